box      = "debian/bookworm"
provider = "lxd"

lxd {
  config = {
    "limits.memory"     = "1G"
    "raw.idmap"         = "both 0 0"
    "volatile.eth0.mac" = "x"
    "Bad Key"           = "1"
    "security.privileged" = "true"
  }
  devices = {
    eth0     = { type = "nic" }
    den-sync = { type = "disk" }
    nokind   = { path = "/x" }
  }
}
