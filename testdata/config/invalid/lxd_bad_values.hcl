box      = "debian/bookworm"
provider = "lxd"

lxd {
  remote       = "no/slash"
  profiles     = ["default", "default"]
  storage_pool = ""
  network      = "a-network-name-too-long"
  target       = "@@group"
}
