box    = "debian/bookworm"
memory = 512
