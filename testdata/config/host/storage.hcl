# A DEN_HOME that is not on btrfs: overlay and auto fit, btrfs does not.
box     = "debian/bookworm"
storage = "btrfs"

machine "web" {}

machine "db" {
  storage = "overlay"
}

machine "cache" {
  storage = "auto"
}
