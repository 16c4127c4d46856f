box = "debian/bookworm"

synced_folder "." {
  guest = "/src"
}

synced_folder "src" {
  guest = "/src"
}
