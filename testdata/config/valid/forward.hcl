box = "debian/bookworm"

forward {
  guest = 80
  host  = 8080
}

forward {
  guest    = 53
  host     = 8053
  protocol = "udp"
  host_ip  = "0.0.0.0"
}

forward {
  guest   = 22
  host    = 2222
  host_ip = "::1"
}
