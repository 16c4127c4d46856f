box     = "debian/bookworm"
network = "host"

machine "a" {
  network "public" {
    ip = "10.1.2.10"
  }
}

machine "b" {
  network "private" {
    ip = "8.8.8.8"
  }
}

machine "c" {
  network "private" {
    ip = "10.1.2.1"
  }
}

machine "d" {
  network "private" {
    ip = "fd00::10"
  }
}
