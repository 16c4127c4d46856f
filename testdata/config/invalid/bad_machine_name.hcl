box = "debian/bookworm"

machine "Web_1" {
}
