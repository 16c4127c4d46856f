# LXD machines: a remote server's memory and CPUs are its own, and an LXD
# network is not a host bridge; the local server shares this host's memory.
box = "debian/bookworm"
provider = "lxd"

machine "remote" {
  memory = "64G"
  cpus   = 16
  lxd {
    remote  = "ci"
    network = "lxdbr0"
  }
}

machine "local" {
  memory = "64G"
  lxd {
    network = "lxdbr0"
  }
}
