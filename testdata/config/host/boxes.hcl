box = "debian/bookworn"

machine "a" {}

machine "b" {
  box = "acme/bsae"
}

machine "c" {
  box = "totally/different"
}

machine "d" {
  box     = "other/thing"
  box_url = "https://example.com/other.json"
}

machine "e" {
  box = "debian/trixie"
}

machine "f" {
  box = "acme/base"
}
