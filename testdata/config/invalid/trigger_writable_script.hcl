box = "debian/bookworm"

# The project folder is mounted read-write at /den (the default): a guest
# could rewrite the script den would run on the host.
trigger "after" "up" {
  run {
    path = "scripts/notify.sh"
  }
}

machine "web" {}

machine "db" {
  synced_folder "." {
    guest     = "/den"
    read_only = true
  }
}
