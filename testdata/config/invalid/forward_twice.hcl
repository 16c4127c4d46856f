box = "debian/bookworm"

forward {
  guest = 80
  host  = 8080
}

machine "web" {
  forward {
    guest   = 443
    host    = 8443
    host_ip = "0.0.0.0"
  }
}

machine "api" {
  forward {
    guest = 443
    host  = 8443
  }
  forward {
    guest    = 53
    host     = 8443
    protocol = "udp"
  }
}
