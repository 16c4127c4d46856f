box = "debian/bookworm"

# The project folder, however spelled, replaces the default /den.
synced_folder "./src/.." {
  guest     = "/project"
  read_only = true
}

# Same guest path as the default: this folder takes its place.
synced_folder "src" {
  guest = "/den"
}
