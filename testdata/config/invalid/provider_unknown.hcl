box      = "debian/bookworm"
provider = "docker"
