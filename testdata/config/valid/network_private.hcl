# A private address alone puts the machine on the project's network.
box = "debian/bookworm"

network "private" {
  ip = "10.1.2.10"
}
