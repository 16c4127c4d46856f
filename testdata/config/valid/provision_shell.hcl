# Both forms of the shell provisioner.
box = "debian/bookworm"

provision "shell" {
  inline = ["apt-get update -q", "apt-get install -y make"]
}

provision "shell" {
  name       = "setup"
  path       = "scripts/setup.sh"
  args       = ["--fast", "x y", 3]
  env        = { GREETING = "hi", "QUOTED" = "it's $HOME", COUNT = 2 }
  privileged = false
  run        = "always"
}
