# Machines on LXD beside one on LXC, in one project.
box      = "debian/bookworm"
provider = "lxd"

lxd {
  profiles = ["default"]
  network  = "lxdbr0"
  config   = { "boot.host_shutdown_timeout" = "60" }
}

machine "web" {
  memory = "512M"
}

machine "db" {
  lxd {
    target  = "node2"
    config  = { "boot.host_shutdown_timeout" = "10", "boot.autostart" = "false" }
    devices = { data = { type = "disk", source = "/srv", path = "/srv" } }
  }
}

machine "ci" {
  lxd {
    remote  = "build-farm"
    project = "team"
  }
  synced_folder "." {
    guest   = "/den"
    exclude = ["node_modules/", "*.log"]
  }
}

machine "old" {
  provider = "lxc"
}
