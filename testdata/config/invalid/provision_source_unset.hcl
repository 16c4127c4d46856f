box = "debian/bookworm"

provision "file" {
  destination = "/etc/app/app.ini"
}
