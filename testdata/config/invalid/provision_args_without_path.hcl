box = "debian/bookworm"

provision "shell" {
  inline = ["make"]
  args   = ["install"]
}
