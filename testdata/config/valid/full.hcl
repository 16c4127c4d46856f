# Every setting den knows.
box      = "debian/bookworm"
memory   = "1.5GiB"
cpus     = 2
hostname = "web.example.test"
bridge   = "denbr0"

synced_folder "." {
  guest = "/srv/app"
}

synced_folder "data" {
  guest     = "/data"
  read_only = true
}

synced_folder "/usr/share/doc" {
  guest     = "/doc"
  read_only = true
}

lxc {
  config = {
    "lxc.apparmor.profile" = "unconfined"
    "lxc.cap.drop"         = "sys_module"
    "lxc.cgroup2.pids.max" = 512
  }
}

provision "shell" {
  inline = ["apt-get update -q"]
}

provision "file" {
  source      = "data/gitconfig"
  destination = "/home/den/.gitconfig"
}

forward {
  guest = 80
  host  = 8080
}
