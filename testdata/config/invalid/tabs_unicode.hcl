box = "debian/bookworm"

# A tab and multi-byte characters before the error.
	hostname = "héllo_wörld"
