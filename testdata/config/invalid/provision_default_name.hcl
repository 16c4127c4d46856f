box = "debian/bookworm"

provision "shell" {
  inline = ["true"]
}

provision "file" {
  name        = "shell-1"
  source      = "file.txt"
  destination = "/etc/x"
}

machine "web" {
}

machine "db" {
}
