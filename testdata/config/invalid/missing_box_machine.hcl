memory = "1G"

machine "web" {
  box = "debian/bookworm"
}

machine "db" {
  cpus = 1
}
