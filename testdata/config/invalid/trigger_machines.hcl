box = "debian/bookworm"

trigger "after" "up" {
  run {
    inline = ["true"]
  }
  machines = ["web", "cache"]
}

trigger "after" "up" {
  run {
    inline = ["true"]
  }
  machines = []
}

machine "web" {}

machine "db" {
  trigger "before" "destroy" {
    run {
      inline = ["true"]
    }
    machines = ["web"]
  }
}
