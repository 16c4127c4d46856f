box = "debian/bookworm"

synced_folder "src" {
  guest = "/"
}

machine "web" {
  synced_folder "src" {
    guest = "/proc/src"
  }
}
