package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rec.json")
	target := filepath.Join(dir, "victim")
	must(t, os.WriteFile(target, []byte("keep"), 0o644))
	must(t, os.Symlink(target, p))
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	must(t, WriteFileAtomic(p, []byte("new"), 0o644))
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(p)
	must(t, err)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want a regular 0644 file", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestOpenRegularRefusesLinksAndSpecials(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	must(t, os.WriteFile(target, []byte("secret"), 0o600))
	link := filepath.Join(dir, "lock")
	must(t, os.Symlink(target, link))
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	for _, p := range []string{link, fifo, dir} {
		if f, err := OpenRegular(p, os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, ErrNotRegular) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenRegular(%s) = %v, want ErrNotRegular", p, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "secret" {
		t.Errorf("target changed: %q", b)
	}
	if _, err := ReadRegular(link, 100); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadRegular through a link: %v", err)
	}
	big := filepath.Join(dir, "big")
	must(t, os.WriteFile(big, []byte(strings.Repeat("x", 200)), 0o600))
	if _, err := ReadRegular(big, 100); err == nil {
		t.Error("ReadRegular read a file over its cap")
	}
	if b, err := ReadRegular(target, 100); err != nil || string(b) != "secret" {
		t.Errorf("ReadRegular = %q, %v", b, err)
	}
}

func TestWriteFileAtomicModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	tests := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{name: "new private file", data: "one", mode: 0o600},
		{name: "replace, wider than umask", data: "two", mode: 0o644},
		{name: "replace, narrower", data: "three", mode: 0o400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteFileAtomic(path, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.mode {
				t.Errorf("mode = %04o, want %04o", fi.Mode().Perm(), tc.mode)
			}
			data, err := os.ReadFile(path)
			if err != nil || string(data) != tc.data {
				t.Errorf("content = %q (%v), want %q", data, err, tc.data)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Errorf("directory holds %v (%v), want only the file", entries, err)
			}
		})
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("WriteFileAtomic into a missing directory succeeded")
	}
}
