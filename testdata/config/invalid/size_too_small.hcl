box    = "debian/bookworm"
memory = "16M"
