box      = env("DEN_TEST_BOX", "debian/bookworm", "extra")
hostname = env()
