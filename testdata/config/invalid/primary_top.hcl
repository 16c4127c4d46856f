box = "debian/bookworm"
primary = true
