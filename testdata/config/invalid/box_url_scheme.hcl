box     = "example/app"
box_url = "ftp://boxes.example.com/app.json"
