box = "debian/bookworm"
ssh {
  forward_env = ["LANG", "1BAD"]
}
