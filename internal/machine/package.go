package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/ui"
	"github.com/den-dev/den/provider"
)

// PackageOptions tune Package.
type PackageOptions struct {
	Output      string          // the box file to write; must not exist
	Format      box.Format      // den's own (default) or vagrant-lxc's
	Compression box.Compression // of the rootfs archive; default zstd (gzip for vagrant-lxc)
	Version     string          // the box's version; default the time (2006.01.02.150405)
}

// Package turns the machine into a box file: the machine is stopped (it
// stays stopped, as in Vagrant), its whole filesystem (box and changes) is
// shown on the host through a read-only overlay with a scratch layer on top,
// the machine's own identity is removed from that view (see packageScrub),
// and the result is packed with fresh metadata. Package holds the
// machine's lock.
func (e *Env) Package(ctx context.Context, m *Machine, opts PackageOptions) error {
	if opts.Version != "" {
		if err := box.CheckVersion(opts.Version); err != nil {
			return err
		}
	}
	output, err := filepath.Abs(opts.Output)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(output); err == nil {
		return errdefs.Newf(errdefs.Exists, "%s exists already: remove it or name another file with --output", output)
	}
	if fi, err := os.Stat(filepath.Dir(output)); err != nil || !fi.IsDir() {
		return errdefs.Newf(errdefs.Invalid, "cannot write %s: its folder does not exist", output)
	}
	lk, err := m.lock(ctx, "den package")
	if err != nil {
		return named(m, err)
	}
	defer lk.Unlock()
	return named(m, e.pack(ctx, m, output, opts))
}

func (e *Env) pack(ctx context.Context, m *Machine, output string, opts PackageOptions) error {
	name := m.Name()
	rec, prov, st, err := e.created(ctx, m, "package")
	if err != nil {
		return err
	}
	ex, ok := prov.(provider.Exporter)
	if !ok {
		return fmt.Errorf("package on provider %s: %w", prov.Name(), provider.ErrNotSupported)
	}
	src, err := e.Store.Get(rec.Box, rec.BoxVersion)
	if err != nil {
		return errdefs.Machinef(errdefs.BoxMissing, name, "machine %q was made from box %s %s, which is no longer installed: %w", name, rec.Box, rec.BoxVersion, err)
	}
	if st == provider.Running || st == provider.Frozen {
		e.UI.Say(name, "Attempting graceful shutdown of machine (it stays stopped; 'den up' starts it again)...")
		if err := e.stop(ctx, m, rec, prov, false, 30*time.Second); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	meta := box.Metadata{
		Provider:     box.FormatProvider,
		Version:      box.FormatVersion,
		BuiltOn:      now.Format(time.RFC3339),
		TemplateOpts: src.Meta.TemplateOpts,
		Den:          &box.DenMetadata{Version: opts.Version, User: rec.User, Created: now},
	}
	if meta.Den.Version == "" {
		meta.Den.Version = now.Format("2006.01.02.150405")
	}
	if src.Meta.Den != nil {
		meta.Den.Suite = src.Meta.Den.Suite
	}
	lines, err := src.LXCConfig()
	if err != nil {
		return err
	}
	var lxcConfig []byte
	if len(lines) > 0 {
		lxcConfig = []byte(strings.Join(lines, "\n") + "\n")
	}
	vagrant := opts.Format == box.FormatVagrantLXC
	if vagrant {
		// vagrant-lxc logs in as vagrant; so does den with this box, and
		// it replaces the insecure key with the machine's own.
		meta.Den.User = box.VagrantUser
		lxcConfig = box.VagrantLXCConfig(lines)
	}
	start := time.Now()
	e.UI.Say(name, "Exporting machine...")
	err = ex.ExportRootfs(ctx, rec.Container, func(rootfs string) error {
		root, err := os.OpenRoot(rootfs)
		if err != nil {
			return err
		}
		removed, err := packageScrub(provider.RootFS(root), rec.User)
		if err != nil {
			root.Close()
			return fmt.Errorf("remove the machine's keys from the package: %w", err)
		}
		e.UI.Detail(name, "Left out (per-machine, made anew by 'den up'): %s", strings.Join(removed, ", "))
		if vagrant {
			added, err := box.PrepareVagrantLXC(root)
			if err != nil {
				root.Close()
				return fmt.Errorf("make the package a box for vagrant-lxc: %w", err)
			}
			e.UI.Detail(name, "Added for vagrant-lxc: %s", strings.Join(added, ", "))
		}
		root.Close()
		e.UI.Say(name, "Compressing package to: %s", output)
		prog := e.UI.Progress(name, "Packing", 0)
		err = box.WriteBoxFile(ctx, output, rootfs, meta, box.PackOptions{
			Format:      opts.Format,
			Compression: opts.Compression,
			LXCConfig:   lxcConfig,
			Progress:    func(n int64) { prog.Update(n, "") },
		})
		prog.Done()
		return err
	})
	if err != nil {
		return err
	}
	size := int64(0)
	if fi, err := os.Stat(output); err == nil {
		size = fi.Size()
	}
	e.UI.Say(name, "Box file written: %s (%s in %s).\nAdd it with 'den box add NAME %s'.", output, ui.Bytes(size), time.Since(start).Round(100*time.Millisecond), output)
	return nil
}

// packageScrub removes from a machine's filesystem (root) what belongs to
// this one machine and what den writes anew into every machine it makes:
// the login user's authorized_keys (den's key for this machine), the host
// keys, the machine id (left empty, as in a built box), the hostname, D-Bus's
// machine id copy, systemd's random seed and DHCP leases. The sshd drop-in
// den wrote stays (it names the host key file den writes at create). It
// returns what it removed, as guest paths.
func packageScrub(root provider.GuestFS, user string) ([]string, error) {
	var removed []string
	remove := func(name string) error {
		fi, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			err = removeAll(root, name)
		} else {
			err = root.Remove(name)
		}
		if err != nil {
			return err
		}
		removed = append(removed, "/"+name)
		return nil
	}
	home, err := userHome(root, user)
	if err != nil {
		return nil, err
	}
	names := []string{path.Join(home, ".ssh/authorized_keys"), "etc/hostname", "var/lib/dbus/machine-id", "var/lib/systemd/random-seed"}
	for _, g := range []string{"etc/ssh/ssh_host_*", "var/lib/dhcp/*"} {
		dir, pattern := path.Split(g)
		entries, err := root.ReadDir(path.Clean(dir))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, en := range entries {
			if ok, _ := path.Match(pattern, en.Name()); ok {
				names = append(names, dir+en.Name())
			}
		}
	}
	for _, n := range names {
		if err := remove(n); err != nil {
			return nil, fmt.Errorf("remove /%s: %w", n, err)
		}
	}
	if err := root.WriteFile("etc/machine-id", nil, 0o444, 0, 0); err != nil {
		return nil, err
	}
	removed = append(removed, "/etc/machine-id (emptied)")
	return removed, nil
}

// userHome returns the home folder of user from the guest's /etc/passwd,
// relative to the root.
func userHome(root provider.GuestFS, user string) (string, error) {
	passwd, err := root.ReadFile("etc/passwd")
	if err != nil {
		return "", fmt.Errorf("read the machine's /etc/passwd: %w", err)
	}
	for l := range strings.SplitSeq(string(passwd), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == user {
			return strings.TrimPrefix(path.Clean("/"+f[5]), "/"), nil
		}
	}
	return "", fmt.Errorf("the machine has no user %q in /etc/passwd", user)
}

// removeAll removes name and everything under it, never following a link.
func removeAll(root provider.GuestFS, name string) error {
	entries, err := root.ReadDir(name)
	if err != nil {
		return err
	}
	for _, en := range entries {
		child := path.Join(name, en.Name())
		if en.IsDir() {
			err = removeAll(root, child)
		} else {
			err = root.Remove(child)
		}
		if err != nil {
			return err
		}
	}
	return root.Remove(name)
}
