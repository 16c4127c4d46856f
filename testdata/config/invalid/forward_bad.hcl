box = "debian/bookworm"

forward {
  guest    = 0
  host     = 70000
  protocol = "sctp"
  host_ip  = "localhost"
}

forward {
  host = 8080
}
