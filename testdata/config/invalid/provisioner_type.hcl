box = "debian/bookworm"

provision "ansible" {
  playbook = "site.yml"
}
