box = "debian/bookworm"

lxd {
  remote = "ci"
}

machine "web" {
  lxc {
    config = { "lxc.apparmor.profile" = "unconfined" }
  }
}

machine "db" {
  provider = "lxd"
  lxc {
    config = { "lxc.apparmor.profile" = "unconfined" }
  }
}
