box = "debian/bookworm"

provision "shell" {
  path = "src"
}
