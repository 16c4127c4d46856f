package box

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestRootfsTarRoundTrip writes an LXD-style image (metadata.yaml first,
// then rootfs/) and extracts its rootfs again: the metadata is skipped and
// the tree comes back.
func TestRootfsTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("box\n"), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(src, "etc/link"))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	meta := []byte("architecture: x86_64\n")
	tw.WriteHeader(&tar.Header{Name: "metadata.yaml", Mode: 0o644, Size: int64(len(meta)), Typeflag: tar.TypeReg})
	tw.Write(meta)
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := WriteRootfsTar(&buf, src, "rootfs/"); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := ExtractRootfs(bytes.NewReader(buf.Bytes()), "image", dst, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "etc/hostname")); err != nil || string(b) != "box\n" {
		t.Errorf("etc/hostname: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "etc/link")); err != nil || l != "/etc/hostname" {
		t.Errorf("etc/link: %q %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "metadata.yaml")); !os.IsNotExist(err) {
		t.Errorf("metadata.yaml was extracted: %v", err)
	}
}

func TestExtractRootfsRefusesEscapes(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir})
	tw.WriteHeader(&tar.Header{Name: "rootfs/../evil", Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Close()
	err := ExtractRootfs(bytes.NewReader(buf.Bytes()), "image", t.TempDir(), nil)
	var ae *ArchiveError
	if !errors.As(err, &ae) {
		t.Fatalf("ExtractRootfs of rootfs/../evil = %v, want an ArchiveError", err)
	}
}
