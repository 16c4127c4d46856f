box = "debian/bookworm"

lxc {
  config = {
    "apparmor.profile" = "unconfined"
    lxc.cap.drop       = "sys_module"
    "lxc.cap.keep"     = ["a"]
  }
}
