locals {
  a = local.b
  b = 1
}

locals {
  b = 2
}

box = "debian/bookworm"

machine "web" {
  locals {
    c = 3
  }
  memory = local.missing
}
