box     = "debian/bookworm"
storage = "zfs"

machine "web" {
  storage = true
}

machine "db" {
  provider = "lxd"
  storage  = "btrfs"
}

machine "cache" {
  storage = ["overlay"]
}
