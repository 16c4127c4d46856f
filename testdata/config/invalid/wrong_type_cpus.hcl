box  = "debian/bookworm"
cpus = "two"
