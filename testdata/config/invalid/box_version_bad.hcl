box         = "example/app"
box_version = ">= 1.2, <"
