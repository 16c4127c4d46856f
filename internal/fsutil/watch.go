package fsutil

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Watch calls changed each time something is created, written, removed
// or renamed below dirs (new folders are watched too), once per burst:
// quiet after the last event. Paths skip says yes to are ignored. It
// returns ctx's error when ctx ends.
func Watch(ctx context.Context, dirs []string, skip func(path string) bool, quiet time.Duration, changed func()) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	const mask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_ONLYDIR
	paths := map[int]string{}
	add := func(root string) {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if skip != nil && skip(p) {
				return filepath.SkipDir
			}
			if wd, err := unix.InotifyAddWatch(fd, p, mask); err == nil {
				paths[wd] = p
			}
			return nil
		})
	}
	for _, d := range dirs {
		add(d)
	}
	buf := make([]byte, 64<<10)
	var due time.Time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			if !due.IsZero() && time.Now().After(due) {
				due = time.Time{}
				changed()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		case err != nil:
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			name := string(nameBytes)
			for i := range len(name) {
				if name[i] == 0 {
					name = name[:i]
					break
				}
			}
			p := filepath.Join(paths[int(ev.Wd)], name)
			if skip != nil && skip(p) {
				continue
			}
			if ev.Mask&unix.IN_ISDIR != 0 && ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
				add(p)
			}
			due = time.Now().Add(quiet)
		}
	}
}
