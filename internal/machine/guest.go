package machine

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/den-dev/den/provider"
)

// guestSetup is what den writes into a new machine before its first boot.
type guestSetup struct {
	Hostname   string
	User       string // the box's login user
	UID, GID   int    // the project owner's ids; 0 keeps the box's ids
	Authorized []byte // authorized_keys line
	HostKey    []byte // OpenSSH private host key
	HostPub    []byte
	Nameserver string
	Peers      []peer // the project's other machines, for /etc/hosts
}

// peer is another machine of the project.
type peer struct {
	IP    string
	Names []string
}

// sshdDropIn makes sshd offer only the machine's own host key (a box's keys
// are the same in every clone), take keys only, and take the environment
// variables den.hcl's ssh { forward_env } passes on. den writes it at
// create and again at a start when it changed (Record.SSHD).
const sshdDropIn = `# Written by den: this machine's own host key, keys only.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
AcceptEnv *
`

// sshdDropInSum names the sshdDropIn content a machine has.
func sshdDropInSum() string {
	sum := sha256.Sum256([]byte(sshdDropIn))
	return hex.EncodeToString(sum[:8])
}

// writeSSHDDropIn writes den's sshd drop-in into the machine.
func writeSSHDDropIn(root provider.GuestFS) error {
	if err := mkdirGuest(root, "etc/ssh/sshd_config.d", 0o755, 0, 0); err != nil {
		return err
	}
	return root.WriteFile("etc/ssh/sshd_config.d/den.conf", []byte(sshdDropIn), 0o644, 0, 0)
}

// prepareGuest writes the machine's identity into its filesystem. Every
// path resolves inside the machine (a box is untrusted: its symlinks
// cannot lead den's writes out of it).
func prepareGuest(root provider.GuestFS, g guestSetup, warn func(string, ...any)) (Login, error) {
	hosts := hostsFile(g.Hostname, g.Peers)
	id := make([]byte, 16)
	rand.Read(id)
	files := []struct {
		path string
		data string
		mode fs.FileMode
	}{
		{"etc/hostname", g.Hostname + "\n", 0o644},
		{"etc/hosts", hosts, 0o644},
		{"etc/machine-id", hex.EncodeToString(id) + "\n", 0o444},
		{"etc/resolv.conf", resolvConf(g.Nameserver), 0o644},
	}
	for _, f := range files {
		if err := root.WriteFile(f.path, []byte(f.data), f.mode, 0, 0); err != nil {
			return Login{}, err
		}
	}
	// Host keys: drop the box's, write the machine's own.
	entries, err := root.ReadDir("etc/ssh")
	if err != nil {
		return Login{}, fmt.Errorf("box has no /etc/ssh: is openssh-server installed in it? (%w)", err)
	}
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "ssh_host_") {
			if err := root.Remove("etc/ssh/" + en.Name()); err != nil {
				return Login{}, fmt.Errorf("remove the box's host key %s: %w", en.Name(), err)
			}
		}
	}
	if err := root.WriteFile("etc/ssh/ssh_host_ed25519_key", g.HostKey, 0o600, 0, 0); err != nil {
		return Login{}, err
	}
	if err := root.WriteFile("etc/ssh/ssh_host_ed25519_key.pub", g.HostPub, 0o644, 0, 0); err != nil {
		return Login{}, err
	}
	if err := writeSSHDDropIn(root); err != nil {
		return Login{}, err
	}
	login, err := setupUser(root, g, warn)
	if err != nil {
		return Login{}, err
	}
	uid, gid, home := login.UID, login.GID, strings.TrimPrefix(login.Home, "/")
	sshDir := path.Join(home, ".ssh")
	// A box is untrusted: its ~/.ssh may be a symlink (to /root/.ssh, say).
	// The machine gets a real folder in its own layer instead; den never
	// writes through the link.
	if fi, err := root.Lstat(sshDir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		warn("the box's /%s is a symlink; den makes it a folder in this machine", sshDir)
		if err := root.Remove(sshDir); err != nil {
			return Login{}, fmt.Errorf("replace the symlink /%s in the machine: %w", sshDir, err)
		}
	}
	if err := mkdirGuest(root, sshDir, 0o700, uid, gid); err != nil {
		return Login{}, err
	}
	return login, root.WriteFile(path.Join(sshDir, "authorized_keys"), g.Authorized, 0o600, uid, gid)
}

// resolvConf is the guest's /etc/resolv.conf: the DNS server at the
// host's address on the machine's network (lxc-net's dnsmasq on lxcbr0,
// the provider's resolver on a project network).
func resolvConf(nameserver string) string {
	return "# Written by den: the bridge's DNS.\nnameserver " + nameserver + "\n"
}

// writeResolv replaces the guest's /etc/resolv.conf (before a start on
// another network).
func writeResolv(root provider.GuestFS, nameserver string) error {
	return root.WriteFile("etc/resolv.conf", []byte(resolvConf(nameserver)), 0o644, 0, 0)
}

// hostsFile is the guest's /etc/hosts: its own name and its peers'.
func hostsFile(hostname string, peers []peer) string {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", hostname)
	if len(peers) > 0 {
		hosts += "# den: the other machines of this project\n"
		for _, p := range peers {
			hosts += p.IP + "\t" + strings.Join(p.Names, " ") + "\n"
		}
	}
	return hosts
}

// writeNames replaces the guest's /etc/hostname and /etc/hosts (before a
// start, when the hostname, the project's machines or their addresses
// changed).
func writeNames(root provider.GuestFS, hostname string, peers []peer) error {
	if err := root.WriteFile("etc/hostname", []byte(hostname+"\n"), 0o644, 0, 0); err != nil {
		return err
	}
	return root.WriteFile("etc/hosts", []byte(hostsFile(hostname, peers)), 0o644, 0, 0)
}

// mkdirGuest makes name (and parents) and gives name its mode and owner.
func mkdirGuest(root provider.GuestFS, name string, mode fs.FileMode, uid, gid int) error {
	if err := root.MkdirAll(name, mode); err != nil {
		return fmt.Errorf("create /%s in the machine: %w", name, err)
	}
	if err := root.Lchown(name, uid, gid); err != nil {
		return err
	}
	return root.Chmod(name, mode)
}

// loginIDs reads the login user's uid and gid from the machine's
// /etc/passwd.
func loginIDs(root provider.GuestFS, user string) (uid, gid int, err error) {
	passwd, err := root.ReadFile("etc/passwd")
	if err != nil {
		return 0, 0, fmt.Errorf("read the machine's /etc/passwd: %w", err)
	}
	for _, l := range strings.Split(string(passwd), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == user {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
				break
			}
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("the machine's /etc/passwd has no valid line for its login user %q", user)
}

// setupUser finds the login user and, when the project belongs to someone
// else than the box user, gives the user the project owner's uid and gid so
// files written in synced folders belong to that person.
func setupUser(root provider.GuestFS, g guestSetup, warn func(string, ...any)) (Login, error) {
	uid, gid, home, shell, err := setupIDs(root, g, warn)
	return Login{UID: uid, GID: gid, Home: "/" + home, Shell: shell}, err
}

// Login is the machine's login user, as den exec runs commands.
type Login struct {
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Home  string `json:"home"`
	Shell string `json:"shell,omitempty"`
}

func setupIDs(root provider.GuestFS, g guestSetup, warn func(string, ...any)) (uid, gid int, home, shell string, err error) {
	passwd, err := root.ReadFile("etc/passwd")
	if err != nil {
		return 0, 0, "", "", fmt.Errorf("read the box's /etc/passwd: %w", err)
	}
	lines := strings.Split(string(passwd), "\n")
	at := -1
	var f []string
	for i, l := range lines {
		parts := strings.Split(l, ":")
		if len(parts) == 7 && parts[0] == g.User {
			at, f = i, parts
		}
	}
	if at < 0 {
		return 0, 0, "", "", fmt.Errorf("the box has no user %q (its login user) in /etc/passwd", g.User)
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return 0, 0, "", "", fmt.Errorf("the box's /etc/passwd has a bad line for %q", g.User)
	}
	home = strings.TrimPrefix(path.Clean(f[5]), "/")
	shell = f[6]
	if g.UID == 0 || (g.UID == uid && g.GID == gid) {
		return uid, gid, home, shell, nil
	}
	for _, l := range lines {
		parts := strings.Split(l, ":")
		if len(parts) == 7 && parts[0] != g.User && parts[2] == strconv.Itoa(g.UID) {
			warn("keeping %s's uid %d: the box's user %q already has the project owner's uid %d", g.User, uid, parts[0], g.UID)
			return uid, gid, home, shell, nil
		}
	}
	newGID := gid
	group, err := root.ReadFile("etc/group")
	if err != nil {
		return 0, 0, "", "", fmt.Errorf("read the box's /etc/group: %w", err)
	}
	glines := strings.Split(string(group), "\n")
	taken := false
	for _, l := range glines {
		parts := strings.Split(l, ":")
		if len(parts) == 4 && parts[2] == strconv.Itoa(g.GID) && parts[2] != strconv.Itoa(gid) {
			taken = true
		}
	}
	if !taken {
		for i, l := range glines {
			parts := strings.Split(l, ":")
			if len(parts) == 4 && parts[2] == strconv.Itoa(gid) && parts[0] == g.User {
				parts[2] = strconv.Itoa(g.GID)
				glines[i] = strings.Join(parts, ":")
				newGID = g.GID
			}
		}
	}
	f[2], f[3] = strconv.Itoa(g.UID), strconv.Itoa(newGID)
	lines[at] = strings.Join(f, ":")
	if err := root.WriteFile("etc/passwd", []byte(strings.Join(lines, "\n")), 0o644, 0, 0); err != nil {
		return 0, 0, "", "", err
	}
	if newGID != gid {
		if err := root.WriteFile("etc/group", []byte(strings.Join(glines, "\n")), 0o644, 0, 0); err != nil {
			return 0, 0, "", "", err
		}
	}
	// Hand the home folder over (copy-up of each entry in the overlay).
	err = walk(root, home, func(p string, info fs.FileInfo) error {
		return chownIfOwned(root, p, info, uid, gid, g.UID, newGID)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, "", "", fmt.Errorf("hand /%s to uid %d: %w", home, g.UID, err)
	}
	return g.UID, newGID, home, shell, nil
}

// walk calls fn for name and everything under it, never following a
// symlink (a link is reported, not entered).
func walk(root provider.GuestFS, name string, fn func(p string, info fs.FileInfo) error) error {
	info, err := root.Lstat(name)
	if err != nil {
		return err
	}
	if err := fn(name, info); err != nil {
		return err
	}
	if !info.IsDir() {
		return nil
	}
	entries, err := root.ReadDir(name)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if err := walk(root, path.Join(name, en.Name()), fn); err != nil {
			return err
		}
	}
	return nil
}

// chownIfOwned gives p to newUID/newGID when it belonged to oldUID/oldGID.
func chownIfOwned(root provider.GuestFS, p string, info fs.FileInfo, oldUID, oldGID, newUID, newGID int) error {
	fuid, fgid, ok := provider.Owner(info)
	if !ok {
		return nil
	}
	uid, gid := -1, -1
	if fuid == oldUID {
		uid = newUID
	}
	if fgid == oldGID {
		gid = newGID
	}
	if uid == -1 && gid == -1 {
		return nil
	}
	mode := info.Mode()
	if err := root.Lchown(p, uid, gid); err != nil {
		return err
	}
	// chown clears setuid/setgid bits: put them back on regular files.
	if mode.Type() == 0 && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		return root.Chmod(p, mode)
	}
	return nil
}
