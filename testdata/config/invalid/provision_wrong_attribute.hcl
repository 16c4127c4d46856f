box = "debian/bookworm"

provision "shell" {
  inline      = ["true"]
  destination = "/tmp/x"
}
