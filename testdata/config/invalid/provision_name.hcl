box = "debian/bookworm"

provision "shell" {
  name   = "my deps"
  inline = ["true"]
}
