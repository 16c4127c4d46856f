box = "debian/bookworm"

lxc {
  config = {}
}

lxc {
  config = {}
}
