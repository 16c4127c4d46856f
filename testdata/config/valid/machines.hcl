# Machines inherit the top level; their own settings win.
box    = "debian/bookworm"
memory = "1G"
cpus   = 2

synced_folder "src" {
  guest = "/src"
}

lxc {
  config = {
    "lxc.apparmor.profile" = "generated"
    "lxc.cap.drop"         = "sys_module"
  }
}

provision "shell" {
  inline = ["echo common"]
}

machine "web" {
  hostname = "www"

  forward {
    guest = 80
    host  = 8080
  }
}

machine "db" {
  box    = "debian/trixie"
  memory = 536870912

  synced_folder "data" {
    guest     = "/src" # replaces the top-level /src
    read_only = true
  }

  synced_folder "." {
    disabled = true
  }

  lxc {
    config = {
      "lxc.apparmor.profile" = "unconfined"
      "lxc.cgroup2.pids.max" = "100"
    }
  }

  provision "shell" {
    inline = ["echo db"]
  }
}
