cpus = 2
