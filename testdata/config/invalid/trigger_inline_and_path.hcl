box = "debian/bookworm"

synced_folder "." {
  guest     = "/den"
  read_only = true
}

trigger "before" "up" {
  run_remote {
    inline = []
  }
  run {
    inline = ["echo up"]
    path   = "scripts/notify.sh"
  }
}

trigger "after" "provision" {
  run {
    path = "scripts/missing.sh"
  }
}
