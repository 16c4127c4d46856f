box = "debian/bookworm"

trigger "during" "up" {
  run {
    inline = ["true"]
  }
}

trigger "before" "ssh" {
  run {
    inline = ["true"]
  }
}
