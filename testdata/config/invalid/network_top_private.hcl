box = "debian/bookworm"

network "private" {
  ip = "10.1.2.10"
}

machine "a" {}
machine "b" {}
