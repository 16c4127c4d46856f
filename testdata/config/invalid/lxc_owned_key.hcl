box = "debian/bookworm"

lxc {
  config = {
    "lxc.apparmor.profile"   = "unconfined"
    "lxc.net.0.link"         = "br0"
    "lxc.mount.entry"        = "/ mnt none bind 0 0"
    "lxc.hook.pre-start"     = "/bin/true"
    "lxc.cgroup2.memory.max" = "1G"
  }
}
