box = "debian/bookworm"

machin "db" {
}
