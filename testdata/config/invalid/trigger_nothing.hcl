box = "debian/bookworm"

trigger "after" "up" {
  name = "Notify"
}
