//go:build ignore

// gen writes the box files in this folder: a few good ones and one
// malicious box file per way out of the target folder that den must refuse
// (after containerd's TestBreakouts cases). Run it from the repository root
// with `go run testdata/archives/gen.go`; the box tests read the files it
// writes and compare them with what it would write now.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// entry is one tar entry; a nil body on a TypeReg entry means empty.
type entry struct {
	name     string
	typ      byte
	body     string
	link     string
	mode     int64
	uid, gid int
	pax      map[string]string
	major    int64
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func tarOf(entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, Uid: e.uid, Gid: e.gid,
			ModTime: epoch, Size: int64(len(e.body)), PAXRecords: e.pax, Devmajor: e.major, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		must(tw.WriteHeader(hdr))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			must(err)
		}
	}
	must(tw.Close())
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.ModTime = epoch
	w.Write(b)
	must(w.Close())
	return buf.Bytes()
}

func zst(b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	must(err)
	w.Write(b)
	must(w.Close())
	return buf.Bytes()
}

func xzc(b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	must(err)
	w.Write(b)
	must(w.Close())
	return buf.Bytes()
}

const meta = `{"provider": "lxc", "version": "3", "den": {"version": "1.0.0", "user": "den"}}` + "\n"

// base is a minimal rootfs: what every good box holds.
var base = []entry{
	{name: "rootfs/", typ: tar.TypeDir},
	{name: "rootfs/etc/", typ: tar.TypeDir},
	{name: "rootfs/etc/passwd", typ: tar.TypeReg, body: "root:x:0:0:root:/root:/bin/bash\nden:x:1000:1000::/home/den:/bin/bash\n"},
	{name: "rootfs/etc/localtime", typ: tar.TypeSymlink, link: "/usr/share/zoneinfo/Etc/UTC"},
	{name: "rootfs/usr/", typ: tar.TypeDir},
	{name: "rootfs/usr/bin/", typ: tar.TypeDir},
	{name: "rootfs/usr/bin/sudo", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
	{name: "rootfs/usr/bin/ping", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o755,
		// cap_net_raw=ep, as iputils' postinst sets it.
		pax: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"SCHILY.xattr.trusted.overlay.opaque": "y"}},
	{name: "rootfs/usr/bin/sudoedit", typ: tar.TypeLink, link: "rootfs/usr/bin/sudo"},
	{name: "rootfs/home/", typ: tar.TypeDir},
	{name: "rootfs/home/den/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
	{name: "rootfs/home/den/.profile", typ: tar.TypeReg, body: "# profile\n", uid: 1000, gid: 1000},
	{name: "rootfs/dev/", typ: tar.TypeDir},
	{name: "rootfs/dev/null", typ: tar.TypeChar, mode: 0o666, major: 1},
	{name: "rootfs/ro/", typ: tar.TypeDir, mode: 0o555},
	{name: "rootfs/ro/file", typ: tar.TypeReg, body: "in a read-only folder\n"},
}

// box makes a box file: the outer tar (gzip) with metadata.json, the given
// rootfs archive and any extra outer entries.
func box(rootfs []byte, outer ...entry) []byte {
	entries := []entry{{name: "metadata.json", typ: tar.TypeReg, body: meta}}
	if rootfs != nil {
		entries = append(entries, entry{name: "rootfs.tar.gz", typ: tar.TypeReg, body: string(rootfs)})
	}
	return gz(tarOf(append(entries, outer...)))
}

// evil is a box whose rootfs is base plus the given entries.
func evil(extra ...entry) []byte {
	return box(gz(tarOf(append(append([]entry{}, base...), extra...))))
}

func main() {
	dir := filepath.Join("testdata", "archives")
	files := map[string][]byte{
		// Good boxes, in every compression, found by their bytes.
		"good.box":       box(gz(tarOf(base)), entry{name: "lxc-config", typ: tar.TypeReg, body: "lxc.arch = amd64\nlxc.hook.pre-start = /bin/evil\n"}, entry{name: "lxc-template", typ: tar.TypeReg, body: "#!/bin/sh\nrm -rf /\n", mode: 0o755}),
		"good-zstd.box":  zst(tarOf([]entry{{name: "./metadata.json", typ: tar.TypeReg, body: meta}, {name: "./rootfs.tar.zst", typ: tar.TypeReg, body: string(zst(tarOf(base)))}})),
		"good-xz.box":    xzc(tarOf([]entry{{name: "metadata.json", typ: tar.TypeReg, body: meta}, {name: "rootfs.tar.xz", typ: tar.TypeReg, body: string(xzc(tarOf(base)))}})),
		"good-plain.box": tarOf([]entry{{name: "metadata.json", typ: tar.TypeReg, body: meta}, {name: "rootfs.tar", typ: tar.TypeReg, body: string(tarOf(base))}}),

		// Ways out, in the rootfs archive.
		"evil-dotdot.box":           evil(entry{name: "rootfs/../x", typ: tar.TypeReg, body: "out"}),
		"evil-dotdot-nested.box":    evil(entry{name: "rootfs/etc/../../../x", typ: tar.TypeReg, body: "out"}),
		"evil-absolute.box":         evil(entry{name: "/tmp/den-evil-absolute", typ: tar.TypeReg, body: "out"}),
		"evil-symlink-write.box":    evil(entry{name: "rootfs/escape", typ: tar.TypeSymlink, link: "/tmp"}, entry{name: "rootfs/escape/den-evil-symlink", typ: tar.TypeReg, body: "out"}),
		"evil-symlink-relative.box": evil(entry{name: "rootfs/etc/up", typ: tar.TypeSymlink, link: "../../../../../tmp"}),
		"evil-symlink-chain.box":    evil(entry{name: "rootfs/a", typ: tar.TypeSymlink, link: "b"}, entry{name: "rootfs/b", typ: tar.TypeSymlink, link: ".."}),
		"evil-symlink-dir-swap.box": evil(entry{name: "rootfs/etc", typ: tar.TypeSymlink, link: "/"}, entry{name: "rootfs/etc/den-evil", typ: tar.TypeReg, body: "out"}),
		"evil-hardlink-out.box":     evil(entry{name: "rootfs/shadow", typ: tar.TypeLink, link: "../../../etc/shadow"}),
		"evil-hardlink-abs.box":     evil(entry{name: "rootfs/shadow", typ: tar.TypeLink, link: "/etc/shadow"}),
		"evil-hardlink-symlink.box": evil(entry{name: "rootfs/hostetc", typ: tar.TypeSymlink, link: "/etc"}, entry{name: "rootfs/shadow", typ: tar.TypeLink, link: "rootfs/hostetc/shadow"}),
		"evil-hardlink-missing.box": evil(entry{name: "rootfs/x", typ: tar.TypeLink, link: "rootfs/not/there"}),
		"evil-outside-rootfs.box":   evil(entry{name: "etc/passwd", typ: tar.TypeReg, body: "out"}),

		// Ways out, in the box file itself.
		"evil-outer-symlink.box": gz(tarOf([]entry{{name: "metadata.json", typ: tar.TypeSymlink, link: "/etc/shadow"}, {name: "rootfs.tar.gz", typ: tar.TypeReg, body: string(gz(tarOf(base)))}})),
		"evil-outer-device.box":  box(gz(tarOf(base)), entry{name: "lxc-config", typ: tar.TypeChar, major: 1, mode: 0o666}),
		"evil-outer-dotdot.box":  box(gz(tarOf(base)), entry{name: "../lxc-config", typ: tar.TypeReg, body: "x"}),

		// A second lxc-config line behind a line ending LXC knows (CR: the
		// store splits there too, so the hook is a line of its own, which
		// the provider drops) or behind a NUL (refused).
		"evil-lxc-config-cr.box":  box(gz(tarOf(base)), entry{name: "lxc-config", typ: tar.TypeReg, body: "lxc.arch = amd64\r\nlxc.init.cmd = /sbin/init\rlxc.hook.pre-start = /bin/evil\n"}),
		"evil-lxc-config-nul.box": box(gz(tarOf(base)), entry{name: "lxc-config", typ: tar.TypeReg, body: "lxc.arch = amd64\nlxc.init.cmd = /sbin/init\x00lxc.hook.pre-start = /bin/evil\n"}),

		// Bombs: tiny box files that unpack to far more than they weigh, or
		// make a decoder allocate a huge window. The box tests add them with
		// a small size limit; each must be refused early, leaving nothing.
		"bomb-files.box":         zstBox(tarOf(append(append([]entry{}, base...), zeroFiles(32, 1<<20)...))),
		"bomb-declared.box":      zstBox(declared(1 << 40)),
		"bomb-trailing.box":      zstBox(append(tarOf(base), make([]byte, 64<<20)...)),
		"bomb-outer-skipped.box": zst(tarOf([]entry{{name: "metadata.json", typ: tar.TypeReg, body: meta}, {name: "padding", typ: tar.TypeReg, body: string(make([]byte, 64<<20))}, {name: "rootfs.tar.zst", typ: tar.TypeReg, body: string(zst(tarOf(base)))}})),
		"bomb-zstd-window.box":   zstdWindowBomb(29, 384<<20),
		"bomb-xz-dict.box":       xzDictBomb(36),

		// Broken boxes.
		"broken-truncated.box":   box(gz(tarOf(base)))[:600],
		"broken-no-metadata.box": gz(tarOf([]entry{{name: "rootfs.tar.gz", typ: tar.TypeReg, body: string(gz(tarOf(base)))}})),
		"broken-no-rootfs.box":   box(nil),
		"broken-provider.box":    gz(tarOf([]entry{{name: "metadata.json", typ: tar.TypeReg, body: `{"provider": "virtualbox"}`}, {name: "rootfs.tar.gz", typ: tar.TypeReg, body: string(gz(tarOf(base)))}})),
		"broken-bzip2.box":       []byte("BZh91AY&SY not really"),
		"broken-not-linux.box":   box(gz(tarOf([]entry{{name: "rootfs/", typ: tar.TypeDir}, {name: "rootfs/readme", typ: tar.TypeReg, body: "hi"}}))),
	}
	for name, data := range files {
		must(os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	fmt.Printf("wrote %d box files in %s\n", len(files), dir)
}

// zstBox is a box file (plain outer tar) whose rootfs archive is the zstd
// compressed tar rootfs.
func zstBox(rootfs []byte) []byte {
	return tarOf([]entry{{name: "metadata.json", typ: tar.TypeReg, body: meta}, {name: "rootfs.tar.zst", typ: tar.TypeReg, body: string(zst(rootfs))}})
}

// zeroFiles are n files of size zero bytes each.
func zeroFiles(n, size int) []entry {
	var out []entry
	for i := range n {
		out = append(out, entry{name: fmt.Sprintf("rootfs/zero%02d", i), typ: tar.TypeReg, body: string(make([]byte, size))})
	}
	return out
}

// declared is the base rootfs tar, then the header of a file that says it
// holds size bytes, followed by one block of them and nothing more.
func declared(size int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range base {
		must(tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o755, ModTime: epoch, Size: int64(len(e.body)), Format: tar.FormatPAX}))
		tw.Write([]byte(e.body))
	}
	must(tw.WriteHeader(&tar.Header{Name: "rootfs/huge", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch, Size: size, Format: tar.FormatPAX}))
	tw.Write(make([]byte, 512))
	return buf.Bytes() // the writer is never closed: the file is cut short
}

// zstdWindowBomb is a zstd frame written by hand whose header asks for a
// window of 1<<windowLog bytes: a tar header of a file "padding" of size
// bytes (a raw block), the file as run-length blocks of zeros, then the
// rest of the tar (zeros: its end). A decoder that grants the window keeps
// up to that much history in memory while den skips the file.
func zstdWindowBomb(windowLog int, size int) []byte {
	var t bytes.Buffer
	tw := tar.NewWriter(&t)
	must(tw.WriteHeader(&tar.Header{Name: "padding", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch, Size: int64(size), Format: tar.FormatUSTAR}))
	hdr := t.Bytes()
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	block := func(last bool, typ, n int, body []byte) {
		v := uint32(n)<<3 | uint32(typ)<<1
		if last {
			v |= 1
		}
		frame = append(frame, byte(v), byte(v>>8), byte(v>>16))
		frame = append(frame, body...)
	}
	block(false, 0, len(hdr), hdr)
	const rle = 128 << 10
	for n := size + 1024; n > 0; n -= rle {
		block(n <= rle, 1, min(n, rle), []byte{0})
	}
	return frame
}

// xzDictBomb is good-xz.box with its first block header patched to ask
// for an LZMA2 dictionary of the size dictionary code c gives (36: 1 GiB);
// the data still decodes, since a larger dictionary is no harm to it.
func xzDictBomb(c byte) []byte {
	b := xzc(tarOf([]entry{{name: "metadata.json", typ: tar.TypeReg, body: meta}, {name: "rootfs.tar.xz", typ: tar.TypeReg, body: string(xzc(tarOf(base)))}}))
	// Stream header: 12 bytes. Block header: size byte, flags, then the
	// filter flags (ID 0x21, property size 1, dictionary code), padding
	// and a CRC32 of everything before it.
	h := b[12:]
	n := (int(h[0]) + 1) * 4
	if h[1]&0xc0 != 0 || h[2] != 0x21 || h[3] != 1 {
		log.Fatalf("unexpected xz block header % x", h[:n])
	}
	h[4] = c
	binary.LittleEndian.PutUint32(h[n-4:], crc32.ChecksumIEEE(h[:n-4]))
	return b
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
