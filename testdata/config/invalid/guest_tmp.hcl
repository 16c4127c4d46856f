box = "debian/bookworm"

synced_folder "src" {
  guest = "/tmp/src"
}
