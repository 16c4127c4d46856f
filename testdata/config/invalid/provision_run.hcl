box = "debian/bookworm"

provision "shell" {
  inline = ["make"]
  run    = "twice"
}
