box    = "debian/bookworm"
memory = "8G"
cpus   = 2
bridge = "lxcbr0"

forward {
  guest   = 80
  host    = 8000
  host_ip = "192.168.1.20"
}
