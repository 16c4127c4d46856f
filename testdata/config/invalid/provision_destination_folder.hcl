box = "debian/bookworm"

provision "file" {
  source      = "file.txt"
  destination = "/etc/app/"
}
