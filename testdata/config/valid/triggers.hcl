# Triggers at the top level and in machine blocks, and autostart.
box = "debian/bookworm"

# Read-only, so that a host trigger may run a script of the project.
synced_folder "." {
  guest     = "/den"
  read_only = true
}

autostart       = true
autostart_order = 10

trigger "before" "up" {
  name = "Check VPN"
  run {
    inline = ["ping -c1 -W1 vpn.example.com"]
    env    = { QUIET = "1" }
  }
  on_error = "continue"
}

trigger "after" "up" {
  run {
    path = "scripts/setup.sh"
    args = ["--notify", 2]
  }
  run_remote {
    inline = ["systemctl restart app"]
  }
  machines = ["db"]
}

trigger "before" "destroy" {
  run_remote {
    path       = "scripts/setup.sh"
    privileged = false
  }
}

machine "web" {
  autostart = false
}

machine "db" {
  autostart_order = -1
  autostart_delay = 5

  trigger "after" "up" {
    run_remote {
      inline = ["pg_isready"]
    }
    machines = ["db"]
  }
}
