# storage at the top level applies to the lxd machine too.
box     = "debian/bookworm"
storage = "overlay"

machine "web" {}

machine "db" {
  provider = "lxd"
}
