box = "debian/bookworm"

synced_folder "file.txt" {
  guest = "/file"
}
