box = "debian/bookworm"

autostart       = "yes please"
autostart_order = 1.5
autostart_delay = -1

machine "web" {
  autostart_delay = 7200
}
