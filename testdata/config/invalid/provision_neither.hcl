box = "debian/bookworm"

provision "shell" {
  privileged = false
}
