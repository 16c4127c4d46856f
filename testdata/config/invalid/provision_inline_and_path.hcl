box = "debian/bookworm"

provision "shell" {
  inline = ["make"]
  path   = "setup.sh"
}
