# Top-level provisioners run first, then the machine's own; a machine's
# provisioner named like a top-level one takes its place.
box = "debian/bookworm"

provision "shell" {
  name   = "deps"
  inline = ["apt-get install -y make"]
}

provision "file" {
  source      = "data/gitconfig"
  destination = "/home/den/.gitconfig"
}

machine "web" {
  provision "shell" {
    inline = ["make -C /den"]
  }
}

machine "db" {
  provision "file" {
    name        = "conf"
    source      = "data"
    destination = "/etc/db"
  }

  provision "shell" {
    name   = "deps"
    inline = ["apt-get install -y postgresql"]
    run    = "always"
  }
}
