box = "example/app"

machine "web" {
  box_version = "~> 2"
  box_url     = ""
}
