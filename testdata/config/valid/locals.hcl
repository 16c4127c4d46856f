locals {
  box  = "debian/bookworm"
  base = 256
}

locals {
  memory = "${local.base * 2}M"
}

box    = local.box
memory = local.memory

machine "web" {
  hostname = "web-${env("DEN_TEST_UNSET_VARIABLE", "dev")}"
}

machine "db" {
  memory = "${local.base}M"
}
