box      = "debian/bookworm"
provider = "lxd"

lxd {
  remote = "ci"
}

synced_folder "." {
  guest = "/den"
  type  = "bind"
}

synced_folder "/" {
  guest     = "/src"
  type      = "rsync"
  read_only = true
}

synced_folder "/" {
  guest   = "/host"
  type    = "sync"
  exclude = ["x"]
}
