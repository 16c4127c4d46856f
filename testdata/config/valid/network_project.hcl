# The project's own network; web has a fixed address on it (Vagrant's
# private_network), db gets one den picks in the same subnet.
box     = "debian/bookworm"
network = "project"

machine "web" {
  network "private" {
    ip = "192.168.56.10"
  }
}

machine "db" {}
