box = "debian/bookworm
memory = "1G"
