box    = "debian/bookworm"
memory = true
