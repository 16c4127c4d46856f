box      = env("DEN_TEST_BOX", "debian/bookworm") # unset: the default
memory   = env("DEN_TEST_MEMORY")                 # "2G"
hostname = env("DEN_TEST_EMPTY", "fallback")      # empty: the default
bridge   = "br-${env("DEN_TEST_BRIDGE")}"         # "test"
cpus     = env("DEN_TEST_UNSET", 3)
