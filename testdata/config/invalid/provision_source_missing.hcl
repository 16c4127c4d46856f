box = "debian/bookworm"

provision "file" {
  source      = "conf/app.ini"
  destination = "/etc/app/app.ini"
}
