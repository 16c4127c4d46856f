box = "debian/bookworm"

lxc {
  # Not a literal map: kept sorted by key.
  config = { for k, v in { "lxc.start.auto" = 0, "lxc.apparmor.profile" = "unconfined" } : k => v }
}
