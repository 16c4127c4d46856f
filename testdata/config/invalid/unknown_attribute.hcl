box    = "debian/bookworm"
memroy = "1G"
