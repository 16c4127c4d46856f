box = "debian/bookworm"

trigger "after" "up" {
  name     = "two\nlines"
  on_error = "ignore"
  run {
    inline = ["true"]
    env    = { "1ST" = "x" }
  }
  run {
    inline = ["false"]
  }
}

trigger "before" "halt" {
  run {
    inline     = ["echo $DEN_MACHINE"]
    args       = ["--now"]
    privileged = true
  }
  run_remote {
    command = "sync"
  }
}
