# An example project: one Debian machine with this folder at /den.
box    = "debian/bookworm"
memory = "512M"

synced_folder "." {
  guest = "/den"
}
