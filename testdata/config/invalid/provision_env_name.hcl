box = "debian/bookworm"

provision "shell" {
  inline = ["echo $GREETING"]
  env    = { GREETING = "hi", "APP-ENV" = "dev" }
}
