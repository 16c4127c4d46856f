box = "debian/bookworm"

machine "web" {
  provider = "lxd"
  network  = "project"
}

machine "db" {
  provider = "lxd"
  network "private" {
    ip = "10.1.2.10"
  }
}
