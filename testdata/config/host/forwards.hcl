box = "debian/bookworm"

forward {
  guest   = 80
  host    = 8000
  host_ip = "10.9.9.9"
}

forward {
  guest   = 81
  host    = 8001
  host_ip = "192.168.1.20"
}

forward {
  guest = 82
  host  = 8080
}

forward {
  guest    = 53
  host     = 5353
  protocol = "udp"
  host_ip  = "0.0.0.0"
}

forward {
  guest   = 83
  host    = 8003
  host_ip = "::1"
}

forward {
  guest   = 84
  host    = 8004
  host_ip = "127.0.0.5"
}

forward {
  guest   = 85
  host    = 8005
  host_ip = "2001:db8::7"
}

forward {
  guest   = 86
  host    = 8006
  host_ip = "::"
}
