box = "debian/bookworm"

trigger "after" "halt" {
  run_remote {
    inline = ["sync"]
  }
}

trigger "after" "destroy" {
  run_remote {
    inline = ["sync"]
  }
}

trigger "after" "suspend" {
  run_remote {
    inline = ["sync"]
  }
}

trigger "before" "resume" {
  run_remote {
    inline = ["sync"]
  }
}
