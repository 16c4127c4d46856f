box = "debian/bookworm"

synced_folder "../elsewhere" {
  guest = "/elsewhere"
}
