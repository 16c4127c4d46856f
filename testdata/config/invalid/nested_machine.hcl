box = "debian/bookworm"

machine "web" {
  machine "db" {
  }
}
