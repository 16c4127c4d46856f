box = "debian/bookworm"
