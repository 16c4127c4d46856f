package fake

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// serveSSH answers one ssh connection for machine name with the host key
// and the login user's authorized_keys that den wrote into its filesystem.
func (p *Provider) serveSSH(name string, conn net.Conn) {
	defer conn.Close()
	root, err := os.OpenRoot(p.rootfs(name))
	if err != nil {
		return
	}
	defer root.Close()
	hostPEM, err := root.ReadFile("etc/ssh/ssh_host_ed25519_key")
	if err != nil {
		return
	}
	hostKey, err := ssh.ParsePrivateKey(hostPEM)
	if err != nil {
		return
	}
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			home := userHome(root, meta.User())
			if home == "" {
				return nil, errors.New("no such user")
			}
			keys, err := root.ReadFile(path.Join(home, ".ssh/authorized_keys"))
			if err != nil {
				return nil, err
			}
			for len(keys) > 0 {
				k, _, _, rest, err := ssh.ParseAuthorizedKey(keys)
				if err != nil {
					break
				}
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
				keys = rest
			}
			return nil, errors.New("key not authorized")
		},
	}
	config.AddHostKey(hostKey)
	_, chans, reqs, err := ssh.NewServerConn(conn, config)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go p.session(name, root, ch, creqs)
	}
}

// userHome is the home folder (relative) of user in the machine's
// /etc/passwd, or "".
func userHome(root *os.Root, user string) string {
	passwd, err := root.ReadFile("etc/passwd")
	if err != nil {
		return ""
	}
	for l := range strings.SplitSeq(string(passwd), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == user {
			return strings.TrimPrefix(path.Clean(f[5]), "/")
		}
	}
	return ""
}

// session runs one exec request through the fake guest shell.
func (p *Provider) session(name string, root *os.Root, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				req.Reply(false, nil)
				return
			}
			req.Reply(true, nil)
			status := p.run(name, root, payload.Command, ch)
			ch.CloseWrite()
			ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
			return
		case "env", "pty-req", "window-change":
			req.Reply(true, nil)
		default:
			req.Reply(false, nil)
		}
	}
}

var (
	uploadRE = regexp.MustCompile(`^mkdir -p '([^']*)' && tar -x -p --no-same-owner -f - -C '([^']*)'$`)
	pathRE   = regexp.MustCompile(`'(/[^']*)'`)
	exitRE   = regexp.MustCompile(`^\s*exit (\d+)\s*$`)
	echoRE   = regexp.MustCompile(`^\s*echo (.*)$`)
)

// run is the fake guest shell: an upload (mkdir + tar -x) unpacks into the
// machine's filesystem; any other command is recorded, and its outcome
// comes from Run when set, else from the scripts it names: each "echo X"
// line prints X, the first "exit N" line ends it with status N.
func (p *Provider) run(name string, root *os.Root, cmd string, ch ssh.Channel) int {
	if m := uploadRE.FindStringSubmatch(cmd); m != nil {
		if err := untar(root, strings.TrimPrefix(m[2], "/"), ch); err != nil {
			fmt.Fprintf(ch.Stderr(), "tar: %v\n", err)
			return 2
		}
		return 0
	}
	io.Copy(io.Discard, ch)
	p.record(name, cmd)
	stdout := func(s string) { io.WriteString(ch, s+"\n") }
	if p.Run != nil {
		return p.Run(name, cmd, stdout)
	}
	for _, m := range pathRE.FindAllStringSubmatch(cmd, -1) {
		script, err := root.ReadFile(strings.TrimPrefix(m[1], "/"))
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(script), "\n") {
			if e := echoRE.FindStringSubmatch(l); e != nil {
				stdout(e[1])
			}
			if e := exitRE.FindStringSubmatch(l); e != nil {
				n, _ := strconv.Atoi(e[1])
				return n
			}
		}
	}
	return 0
}

// untar unpacks regular files and folders from r under dir in root.
func untar(root *os.Root, dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := path.Join(dir, hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := root.MkdirAll(path.Dir(target), 0o755); err != nil {
				return err
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := root.WriteFile(target, data, os.FileMode(hdr.Mode).Perm()); err != nil {
				return err
			}
		}
	}
}
