package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/sshx"
)

// RshCommand is the hidden den command rsync runs as its remote shell:
// `den -C DIR __rsh MACHINE COMMAND...` runs COMMAND in the machine over
// den's pinned ssh connection, its standard streams passed through.
const RshCommand = "__rsh"

// rsyncFolders copies the machine's type = "rsync" synced folders into
// it with the host's rsync, over den's own pinned connection (rsync runs
// den as its remote shell). Each guest folder is made first and given to
// the login user, who owns the copy. den.hcl and .den/ are never sent.
func (e *Env) rsyncFolders(ctx context.Context, m *Machine, client *ssh.Client) error {
	var folders []config.SyncedFolder
	for _, sf := range m.Config.Synced {
		if sf.Type == config.FolderRsync {
			folders = append(folders, sf)
		}
	}
	if len(folders) == 0 {
		return nil
	}
	name := m.Name()
	if _, err := exec.LookPath("rsync"); err != nil {
		return errdefs.Machinef(errdefs.HostNotReady, name, "machine %q has rsync synced folders, and this host has no rsync: install it (apt-get install rsync)", name)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rec, err := m.Record()
	if err != nil || rec == nil {
		return err
	}
	for _, sf := range folders {
		start := time.Now()
		e.UI.Say(name, "Rsyncing folder: %s => %s", sf.Host, sf.Guest)
		mk := fmt.Sprintf("sudo mkdir -p %s && sudo chown %s: %s && command -v rsync >/dev/null",
			shellQuote(sf.Guest), shellQuote(rec.User), shellQuote(sf.Guest))
		var errb bytes.Buffer
		status, err := sshx.Run(ctx, client, mk, nil, nil, &errb)
		if err != nil {
			return err
		}
		if status != 0 {
			return errdefs.Machinef(errdefs.GuestFailed, name, "machine %q: cannot sync %s: the guest has no rsync, or %s cannot be made (%s); den's built boxes have rsync", name, sf.Guest, sf.Guest, strings.TrimSpace(errb.String()))
		}
		args := []string{"--recursive", "--links", "--perms", "--times", "--compress", "--delete", "--omit-dir-times",
			"--rsh", shellJoin(self, "-C", m.Project.Dir, RshCommand, "--")}
		for _, x := range rsyncExcludes(m, sf) {
			args = append(args, "--exclude", x)
		}
		args = append(args, strings.TrimSuffix(sf.Host, "/")+"/", name+":"+strings.TrimSuffix(sf.Guest, "/")+"/")
		cmd := exec.CommandContext(ctx, "rsync", args...)
		cmd.Env = append(os.Environ(), "DEN_HOME="+e.Home.Path())
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errdefs.Machinef(errdefs.Internal, name, "machine %q: rsync of %s to %s failed: %v\n%s", name, sf.Host, sf.Guest, err, strings.TrimSpace(string(out)))
		}
		e.UI.Detail(name, "synced in %s", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// rsyncExcludes are the patterns rsync leaves out of folder sf: den.hcl
// and .den/ (every machine's keys) when the project lies in it, then
// den.hcl's own.
func rsyncExcludes(m *Machine, sf config.SyncedFolder) []string {
	var out []string
	if rel, err := filepath.Rel(sf.Host, m.Project.Dir); err == nil && (rel == "." || filepath.IsLocal(rel)) {
		base := "/"
		if rel != "." {
			base = "/" + filepath.ToSlash(rel) + "/"
		}
		out = append(out, base+layout.StateDirName+"/", base+filepath.Base(m.Project.File))
	}
	return append(out, sf.Exclude...)
}

// Rsync copies the rsync synced folders of each running machine into it
// again (den rsync), under the machine's lock.
func (e *Env) Rsync(ctx context.Context, ms []*Machine) error {
	return each(ctx, ms, false, func(m *Machine) error {
		lk, err := m.lock(ctx, "den rsync")
		if err != nil {
			return err
		}
		defer lk.Unlock()
		if !hasRsync(m) {
			e.UI.Say(m.Name(), "No rsync synced folders.")
			return nil
		}
		client, err := e.Connect(ctx, m)
		if err != nil {
			return err
		}
		defer client.Close()
		return e.rsyncFolders(ctx, m, client)
	})
}

func hasRsync(m *Machine) bool {
	for _, sf := range m.Config.Synced {
		if sf.Type == config.FolderRsync {
			return true
		}
	}
	return false
}

// RsyncAuto syncs the machines' rsync folders once, then again whenever
// something changes in one of them (den rsync-auto), until ctx ends. A
// burst of changes makes one sync, 300 ms after the last.
func (e *Env) RsyncAuto(ctx context.Context, ms []*Machine) error {
	var dirs []string
	var watched []*Machine
	for _, m := range ms {
		for _, sf := range m.Config.Synced {
			if sf.Type == config.FolderRsync {
				dirs = append(dirs, sf.Host)
			}
		}
		if hasRsync(m) {
			watched = append(watched, m)
		}
	}
	if len(watched) == 0 {
		return errdefs.Newf(errdefs.Invalid, "no machine here has rsync synced folders (type = \"rsync\")")
	}
	if err := e.Rsync(ctx, watched); err != nil {
		return err
	}
	for _, m := range watched {
		e.UI.Say(m.Name(), "Watching for changes (Ctrl-C ends)...")
	}
	skip := func(p string) bool {
		for _, m := range watched {
			if strings.HasPrefix(p, layout.ProjectState(m.Project.Dir).Path()) {
				return true
			}
		}
		return false
	}
	err := fsutil.Watch(ctx, dirs, skip, 300*time.Millisecond, func() {
		if err := e.Rsync(ctx, watched); err != nil && ctx.Err() == nil {
			for _, m := range watched {
				e.UI.Warn(m.Name(), "rsync: %v", err)
			}
		}
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// shellJoin quotes each argument for a POSIX shell.
func shellJoin(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
