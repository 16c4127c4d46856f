box = "../../etc"

machine "a" {
  box = "debian/bookworm/extra"
}

machine "b" {
  box = ".hidden/box"
}

machine "c" {
  box = "org/..name"
}

machine "d" {
  box = "/var/lib/den/boxes/x"
}

machine "e" {
  box = "debian bookworm"
}

machine "f" {
  box = "debian/bookworm"
}
