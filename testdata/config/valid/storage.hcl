# The store of each machine's filesystem (provider lxc): the top level's
# for web, overlay for db, the DEN_HOME's (auto) for cache.
box     = "debian/bookworm"
storage = "btrfs"

machine "web" {}

machine "db" {
  storage = "overlay"
}

machine "cache" {
  storage = "auto"
}
