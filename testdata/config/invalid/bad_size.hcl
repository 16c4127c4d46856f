box    = "debian/bookworm"
memory = "12Q"
