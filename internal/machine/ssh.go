package machine

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/den-dev/den/internal/sshx"
	"github.com/den-dev/den/provider"
)

// ProxyCommand is the hidden den command OpenSSH runs (ProxyCommand in
// 'den ssh-config') to reach a machine whose address is not reachable
// from here: `den -C DIR __ssh-proxy MACHINE` connects to its sshd as
// den does and passes the bytes through.
const ProxyCommand = "__ssh-proxy"

// SSHConfig returns an ssh_config entry for each created machine of ms
// (see sshEntry), Host alias (SSHAlias when "") with den's key and pinned
// host key. A machine den reaches through its provider (a Dialer: a
// remote LXD server) gets a ProxyCommand that runs den.
func (e *Env) SSHConfig(ctx context.Context, ms []*Machine, alias string) ([]sshx.ConfigEntry, error) {
	var out []sshx.ConfigEntry
	for _, m := range ms {
		rec, err := m.Record()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			continue
		}
		prov, err := e.machineProvider(m, rec)
		if err != nil {
			return nil, err
		}
		_, dialer := prov.(provider.Dialer)
		if rec.Address == "" && !dialer {
			continue // not created as far as an address
		}
		ce, err := sshEntry(m, rec, alias)
		if err != nil {
			return nil, err
		}
		if dialer {
			self, err := os.Executable()
			if err != nil {
				return nil, err
			}
			ce.ProxyCommand = []string{self, "-C", m.Project.Dir, ProxyCommand, m.Name()}
			if home := os.Getenv("DEN_HOME"); home != "" {
				ce.ProxyCommand = append([]string{"env", "DEN_HOME=" + home}, ce.ProxyCommand...)
			}
			if ce.HostName == "" {
				ce.HostName = SSHAlias(m)
			}
		}
		out = append(out, ce)
	}
	return out, nil
}

// ProxySSH connects to the sshd of running machine m as den does (through
// its provider when it is a Dialer) and copies r to it and its answers to
// w until either side ends. OpenSSH checks the host key itself.
func (e *Env) ProxySSH(ctx context.Context, m *Machine, r io.Reader, w io.Writer) error {
	rec, prov, st, err := e.current(ctx, m)
	if err != nil {
		return err
	}
	if st != provider.Running {
		return fmt.Errorf("machine %q is %s: 'den up %s' starts it", m.Name(), st, m.Name())
	}
	t, err := e.target(m, rec, prov)
	if err != nil {
		return err
	}
	conn, err := t.DialConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var once sync.Once
	done := make(chan struct{})
	end := func() { once.Do(func() { close(done) }) }
	go func() {
		io.Copy(conn, r)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	go func() {
		io.Copy(w, conn)
		end()
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// Rsh runs cmd (a remote shell's words, joined with spaces as ssh does)
// in running machine m with den's pinned connection and the given
// streams, and returns its exit status: rsync's remote shell.
func (e *Env) Rsh(ctx context.Context, m *Machine, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	client, err := e.Connect(ctx, m)
	if err != nil {
		return 255, err
	}
	defer client.Close()
	return sshx.Run(ctx, client, strings.Join(args, " "), stdin, stdout, stderr)
}
