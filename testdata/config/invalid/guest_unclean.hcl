box = "debian/bookworm"

synced_folder "src" {
  guest = "/srv/../etc"
}

synced_folder "." {
  guest = "/srv/app/"
}
