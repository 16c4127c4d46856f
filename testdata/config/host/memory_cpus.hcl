box    = "debian/bookworm"
memory = "99999T"
cpus   = 1000

machine "web" {}

machine "db" {
  memory = "16G"
  cpus   = 3
}

machine "cache" {
  memory = "1G"
  cpus   = 2
}
