box = "debian/bookworm"

machine "a" {
  network "private" {
    ip = "10.1.2.10"
  }
}

machine "b" {
  network "private" {
    ip = "10.1.2.10"
  }
}

machine "c" {
  network "private" {
    ip = "10.1.3.10"
  }
}

machine "d" {
  network = "bridge"
  network "private" {
    ip = "10.1.2.11"
  }
}

machine "e" {
  network = "project"
  bridge  = "br0"
}
