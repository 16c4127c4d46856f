box = "debian/bookworm"

lxd {
  remote = "ci"
}
