box = "debian/bookworm"

provision "shell" {
  name   = "deps"
  inline = ["apt-get install -y make"]
}

provision "file" {
  name        = "deps"
  source      = "file.txt"
  destination = "/etc/deps"
}
