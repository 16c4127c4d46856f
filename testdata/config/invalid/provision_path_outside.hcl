box = "debian/bookworm"

provision "shell" {
  path = "../valid/scripts/setup.sh"
}
