box = "debian/bookworm"

machine "db" {
}

machine "db" {
  memory = "1G"
}
