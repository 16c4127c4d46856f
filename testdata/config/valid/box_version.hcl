# box_version and box_url are inherited by machines, which may override them.
box         = "example/app"
box_version = ">= 1.2, < 2"
box_url     = "https://boxes.example.com/app.json"

machine "web" {
}

machine "old" {
  box_version = "~> 1.0.3"
}

machine "local" {
  box         = "example/local"
  box_version = "1.0"
  box_url     = "boxes/local.box" # relative to the project folder
}
