package sshx

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Comm runs commands in a machine and copies files into it over one ssh
// client; it is den's provisioning communicator.
type Comm struct {
	client *ssh.Client
}

// NewComm returns a communicator over c.
func NewComm(c *ssh.Client) *Comm {
	return &Comm{client: c}
}

// Run runs cmd without a PTY; status and error are as for the package's Run.
func (c *Comm) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return Run(ctx, c.client, cmd, stdin, stdout, stderr)
}

// Upload copies the host file or folder src to the absolute guest path dst,
// as the login user: dst becomes a copy of src (a folder's content merges
// into an existing folder at dst), and dst's parent is created. Files,
// folders and symlinks are copied with their modes (symlinks as links, not
// followed; src itself may be a symlink, which is followed); any other kind
// of file in src is an error. The copy streams a tar archive into the
// guest's tar. When ctx ends, the copy is stopped and ctx's error returned.
func (c *Comm) Upload(ctx context.Context, dst string, src string) error {
	if !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
		return fmt.Errorf("uploading to %q: the guest path must be absolute, clean and not /", dst)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("uploading %q to %q: %w", src, dst, err)
	}
	dir := path.Dir(dst)
	cmd := fmt.Sprintf("mkdir -p %s && tar -x -p --no-same-owner -f - -C %s", shellQuote(dir), shellQuote(dir))

	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		err := writeTar(pw, src, path.Base(dst))
		pw.CloseWithError(err)
		packed <- err
	}()
	var stderr bytes.Buffer
	status, err := Run(ctx, c.client, cmd, pr, io.Discard, &stderr)
	pr.CloseWithError(io.ErrClosedPipe) // the guest stopped reading: stop packing
	packErr := <-packed
	switch {
	case err != nil:
		return fmt.Errorf("uploading %q to %q: %w", src, dst, err)
	case packErr != nil && !errors.Is(packErr, io.ErrClosedPipe):
		return fmt.Errorf("uploading %q to %q: %w", src, dst, packErr)
	case status != 0:
		return fmt.Errorf("uploading %q to %q: the guest's tar failed with exit status %d: %s",
			src, dst, status, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// writeTar writes src as a tar archive to w, its entries under name.
func writeTar(w io.Writer, src, name string) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch mode := fi.Mode(); {
		case mode.IsRegular(), mode.IsDir():
		case mode&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%q is not a regular file, folder or symlink (mode %s): den uploads only those", p, mode)
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		hdr.Name = path.Join(name, filepath.ToSlash(rel))
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
