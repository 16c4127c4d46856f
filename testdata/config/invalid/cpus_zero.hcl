box  = "debian/bookworm"
cpus = 0
