box = "debian/bookworm"
machine "a" {
  primary = true
}
machine "b" {
  primary = true
}
