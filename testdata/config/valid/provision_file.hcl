# The file provisioner: a file, a folder, an absolute source.
box = "debian/bookworm"

provision "file" {
  source      = "data/gitconfig"
  destination = "/home/den/.gitconfig"
}

provision "file" {
  name        = "scripts"
  source      = "./scripts/"
  destination = "/opt/scripts"
  run         = "always"
}

provision "file" {
  source      = "/usr/share/doc"
  destination = "/doc"
}
