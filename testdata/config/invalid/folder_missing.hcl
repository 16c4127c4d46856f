box = "debian/bookworm"

synced_folder "missing" {
  guest = "/missing"
}
