box  = "debian/bookworm"
cpus = = 2
