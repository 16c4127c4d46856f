box = "debian/bookworm"
ssh {
  forward_agent = true
  forward_env   = ["LANG", "EDITOR"]
}
machine "web" {
  primary = true
}
machine "db" {
  ssh {
    forward_env = []
  }
}
