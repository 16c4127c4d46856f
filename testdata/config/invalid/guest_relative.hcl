box = "debian/bookworm"

synced_folder "src" {
  guest = "src"
}
