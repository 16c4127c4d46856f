package box

import (
	"io"
	"os"
)

// WriteRootfsTar writes the folder dir as an uncompressed tar stream to w,
// every entry under prefix (e.g. "rootfs/"), with numeric owners, modes,
// times, hard links, device nodes and the extended attributes a box may
// carry, then the end of the archive. Entries written to w before it (an
// LXD image's metadata.yaml) stay: flush, not close, their tar.Writer.
func WriteRootfsTar(w io.Writer, dir, prefix string) error { return writeTree(w, dir, prefix) }

// ExtractRootfs unpacks the entries under rootfs/ of the uncompressed tar
// stream r into the empty folder dir and skips every other entry (an LXD
// image's metadata.yaml and templates/). It is as strict as box add: no
// entry lands outside dir, none is written through a symlink, and only a
// box's allowed extended attributes are kept (dropped counts the others by
// name). Owners are applied when den runs as root.
func ExtractRootfs(r io.Reader, name, dir string, dropped map[string]int) error {
	if dropped == nil {
		dropped = map[string]int{}
	}
	opts := &extractOptions{archive: name, strip: "rootfs/", skipOutside: true, devices: true, chown: os.Geteuid() == 0, dropped: dropped}
	return extractTar(r, dir, opts)
}
