box = "debian/bookworm"

machine "a" {
  bridge = "br-missing"
}

machine "b" {}
