box = "debian/bookworm"

synced_folder "src" {
  read_only = true
}
