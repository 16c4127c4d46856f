box = ""
