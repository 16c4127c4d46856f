package sshx

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

// dialExec starts an in-process sshd whose exec requests run in this
// machine's /bin/sh, and returns a client of it: the "guest" is the host.
func dialExec(t *testing.T) *ssh.Client {
	t.Helper()
	user, host := ed25519Signer(t), ed25519Signer(t)
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), user.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	config.AddHostKey(host)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_, chans, reqs, err := ssh.NewServerConn(conn, config)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			ch, chReqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go func() {
				for req := range chReqs {
					if req.Type != "exec" {
						req.Reply(false, nil)
						continue
					}
					var cmd struct{ Command string }
					ssh.Unmarshal(req.Payload, &cmd)
					req.Reply(true, nil)
					go func() {
						c := exec.Command("/bin/sh", "-c", cmd.Command)
						c.Stdin, c.Stdout, c.Stderr = ch, ch, ch.Stderr()
						err := c.Run()
						status := 0
						var ee *exec.ExitError
						if errors.As(err, &ee) {
							status = ee.ExitCode()
						} else if err != nil {
							status = 255
						}
						exitStatus(ch, uint32(status))
					}()
				}
			}()
		}
	}()
	c, err := Dial(context.Background(), Target{Addr: l.Addr().String(), User: "den", Signer: user, HostKey: host.PublicKey()})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCommRun(t *testing.T) {
	comm := NewComm(dialExec(t))
	var stdout, stderr bytes.Buffer
	status, err := comm.Run(context.Background(), "cat; echo err >&2; exit 3", strings.NewReader("in\n"), &stdout, &stderr)
	if err != nil || status != 3 || stdout.String() != "in\n" || stderr.String() != "err\n" {
		t.Errorf("Run = %d, %v, stdout %q, stderr %q; want 3, nil, \"in\\n\", \"err\\n\"", status, err, stdout.String(), stderr.String())
	}
}

// tree describes the files below root: mode, and content or link target.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			desc += " " + string(data)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCommUpload(t *testing.T) {
	comm := NewComm(dialExec(t))
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"", 0o750}, {"private", 0o700}, {"empty", 0o755}, {"private/deep", 0o755}} {
		os.MkdirAll(filepath.Join(src, d.path), 0o755)
		os.Chmod(filepath.Join(src, d.path), d.mode)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{"run.sh", 0o755}, {"private/key", 0o600}, {"it's a file", 0o644}, {"private/deep/x", 0o4755}} {
		os.WriteFile(filepath.Join(src, f.path), []byte("content of "+f.path), f.mode)
		os.Chmod(filepath.Join(src, f.path), f.mode) // not reduced by the umask
	}
	os.Symlink("run.sh", filepath.Join(src, "relative-link"))
	os.Symlink("/etc/passwd", filepath.Join(src, "absolute-link"))
	base := t.TempDir()

	t.Run("folder into a new parent", func(t *testing.T) {
		dst := filepath.Join(base, "new parent", "it's here")
		if err := comm.Upload(ctx, dst, src); err != nil {
			t.Fatal(err)
		}
		want, got := tree(t, src), tree(t, dst)
		if len(got) != len(want) {
			t.Errorf("uploaded %d entries, want %d:\n%v\n%v", len(got), len(want), got, want)
		}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: %q, want %q", name, got[name], w)
			}
		}
	})

	t.Run("folder merges into an existing one", func(t *testing.T) {
		dst := filepath.Join(base, "existing")
		os.MkdirAll(dst, 0o755)
		os.WriteFile(filepath.Join(dst, "kept"), []byte("k"), 0o644)
		if err := comm.Upload(ctx, dst, src); err != nil {
			t.Fatal(err)
		}
		got := tree(t, dst)
		if got["kept"] == "" || got["run.sh"] != "-rwxr-xr-x content of run.sh" {
			t.Errorf("got %v, want the old file beside the new ones", got)
		}
	})

	t.Run("file under another name", func(t *testing.T) {
		dst := filepath.Join(base, "a", "b", "renamed.sh")
		if err := comm.Upload(ctx, dst, filepath.Join(src, "run.sh")); err != nil {
			t.Fatal(err)
		}
		if got := tree(t, dst)["."]; got != "-rwxr-xr-x content of run.sh" {
			t.Errorf("got %q", got)
		}
	})

	t.Run("symlink source is followed", func(t *testing.T) {
		dst := filepath.Join(base, "followed")
		if err := comm.Upload(ctx, dst, filepath.Join(src, "relative-link")); err != nil {
			t.Fatal(err)
		}
		if got := tree(t, dst)["."]; got != "-rwxr-xr-x content of run.sh" {
			t.Errorf("got %q, want the link's target", got)
		}
	})

	for _, tc := range []struct {
		name, dst, src, want string
	}{
		{"relative destination", "x/y", src, "must be absolute"},
		{"root destination", "/", src, "must be absolute"},
		{"missing source", filepath.Join(base, "m"), filepath.Join(src, "nope"), "no such file"},
		{"guest tar fails", filepath.Join(base, "new parent", "it's here", "run.sh", "x"), src, "exit status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := comm.Upload(ctx, tc.dst, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Upload = %v, want an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("fifo refused", func(t *testing.T) {
		odd := filepath.Join(t.TempDir(), "odd")
		os.Mkdir(odd, 0o755)
		if err := syscall.Mkfifo(filepath.Join(odd, "pipe"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := comm.Upload(ctx, filepath.Join(base, "odd"), odd)
		if err == nil || !strings.Contains(err.Error(), "pipe") || !strings.Contains(err.Error(), "den uploads only") {
			t.Errorf("Upload = %v, want an error naming the fifo", err)
		}
	})
}

func TestCommUploadCancel(t *testing.T) {
	comm := NewComm(dialExec(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := comm.Upload(ctx, filepath.Join(t.TempDir(), "x"), t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Upload = %v, want context.Canceled", err)
	}
}
