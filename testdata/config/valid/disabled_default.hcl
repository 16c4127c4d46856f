box = "debian/bookworm"

synced_folder "." { disabled = true }

synced_folder "src" {
  guest = "/src"
}
