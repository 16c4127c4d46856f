box      = "debian/bookworm"
hostname = "my_host"
