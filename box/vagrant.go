package box

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/sshx"
)

// VagrantUser is the user vagrant-lxc logs in as unless a Vagrantfile says
// otherwise (config.ssh.username).
const VagrantUser = "vagrant"

// VagrantInsecureKeys are Vagrant's published insecure public keys (its
// keys/vagrant.pub.ed25519 and keys/vagrant.pub.rsa): Vagrant logs into a
// new machine with the matching private key, then replaces it with a key of
// its own (config.ssh.insert_key, the default). Vagrant before 2.3.8 has
// the RSA one only.
const VagrantInsecureKeys = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant insecure public key\n" +
	"ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key\n"

// commonInclude is LXC's common container config, present wherever LXC
// is installed (liblxc-common).
const commonInclude = "lxc.include = /usr/share/lxc/config/common.conf"

// VagrantLXCConfig is the lxc-config of a box for vagrant-lxc, which
// appends it to the container's config: LXC's common config (capabilities,
// seccomp, /dev, the proc/sys/cgroup mounts, and lxcfs's hook where it is
// installed; vagrant-lxc's template and /etc/lxc/default.conf add none of
// it), unless the source box's own lines already include a file, then
// those lines, as vagrant-lxc's own package carries them over.
func VagrantLXCConfig(source []string) []byte {
	var b strings.Builder
	included := false
	for _, l := range source {
		if k, _, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "lxc.include" {
			included = true
		}
	}
	if !included {
		b.WriteString("# LXC's common settings: capabilities, seccomp, /dev, cgroup mounts (den package --format vagrant-lxc).\n")
		b.WriteString(commonInclude + "\n")
	}
	for _, l := range source {
		b.WriteString(l + "\n")
	}
	return []byte(b.String())
}

// hostKeyUnit makes the missing ssh host keys before sshd starts: a box
// carries none (each would be the same in every machine), den writes each
// machine's own before its first boot (so the unit does nothing there),
// vagrant-lxc does not.
const hostKeyUnit = `# den package --format vagrant-lxc: a box holds no ssh host keys (every
# machine made from it would share them). Make this machine's own on its
# first boot; a machine den makes has its key already and skips this.
# It runs early in boot (before sysinit.target, so before ssh.socket and
# ssh.service wherever sshd starts from): ordered after basic.target, as
# units are by default, it would form a cycle with ssh.socket, and systemd
# breaks a cycle by dropping one of its jobs, sometimes this one.
[Unit]
Description=Generate this machine's ssh host keys
DefaultDependencies=no
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
After=local-fs.target
Before=sysinit.target ssh.service ssh.socket shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=sysinit.target
`

// vagrantHosts is a machine-neutral /etc/hosts: den writes every machine's
// own, Vagrant adds the hostname when config.vm.hostname is set.
const vagrantHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

// PrepareVagrantLXC makes the root filesystem root (a machine's exported
// view, scrubbed of its identity) into what vagrant-lxc users expect of a
// box: a vagrant user with passwordless sudo and Vagrant's insecure public
// keys, ssh host keys made on first boot (a systemd unit; without systemd
// one box-wide key, which it reports), and a neutral /etc/hosts. It returns
// what it did, in words.
func PrepareVagrantLXC(root *os.Root) ([]string, error) {
	var done []string
	uid, gid, home, created, err := vagrantAccount(root)
	if err != nil {
		return nil, fmt.Errorf("the vagrant user: %w", err)
	}
	if created {
		done = append(done, fmt.Sprintf("user %s (uid %d, /%s)", VagrantUser, uid, home))
	}
	if err := mkdirOwned(root, home, 0o755, uid, gid, false); err != nil {
		return nil, err
	}
	ssh := path.Join(home, ".ssh")
	if err := mkdirOwned(root, ssh, 0o700, uid, gid, true); err != nil {
		return nil, err
	}
	if err := writeOwned(root, path.Join(ssh, "authorized_keys"), []byte(VagrantInsecureKeys), 0o600, uid, gid); err != nil {
		return nil, err
	}
	done = append(done, "Vagrant's insecure public keys in /"+ssh+"/authorized_keys")
	if fi, err := root.Lstat("etc/sudoers.d"); err != nil || !fi.IsDir() {
		return nil, errors.New("the machine has no /etc/sudoers.d: Vagrant needs sudo in the box (apt-get install sudo)")
	}
	if err := writeOwned(root, "etc/sudoers.d/"+VagrantUser, []byte(VagrantUser+" ALL=(ALL) NOPASSWD:ALL\n"), 0o440, 0, 0); err != nil {
		return nil, err
	}
	done = append(done, "passwordless sudo for "+VagrantUser)
	keys, err := vagrantHostKeys(root)
	if err != nil {
		return nil, fmt.Errorf("ssh host keys: %w", err)
	}
	done = append(done, keys)
	if err := writeOwned(root, "etc/hosts", []byte(vagrantHosts), 0o644, 0, 0); err != nil {
		return nil, err
	}
	done = append(done, "a neutral /etc/hosts")
	return done, nil
}

// vagrantHostKeys installs hostKeyUnit where systemd runs the box, else
// writes one ed25519 host key for every machine made from it.
func vagrantHostKeys(root *os.Root) (string, error) {
	_, errSystemd := root.Stat("etc/systemd/system")
	_, errKeygen := root.Stat("usr/bin/ssh-keygen")
	if errSystemd == nil && errKeygen == nil {
		const unit = "etc/systemd/system/den-ssh-hostkeys.service"
		if err := writeOwned(root, unit, []byte(hostKeyUnit), 0o644, 0, 0); err != nil {
			return "", err
		}
		wants := "etc/systemd/system/sysinit.target.wants"
		if err := root.MkdirAll(wants, 0o755); err != nil {
			return "", err
		}
		link := wants + "/den-ssh-hostkeys.service"
		if err := root.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err := root.Symlink("/"+unit, link); err != nil {
			return "", err
		}
		return "ssh host keys made on each machine's first boot (/" + unit + ")", nil
	}
	priv, pub, err := sshx.GenerateHostKey()
	if err != nil {
		return "", err
	}
	if err := writeOwned(root, "etc/ssh/ssh_host_ed25519_key", priv, 0o600, 0, 0); err != nil {
		return "", err
	}
	if err := writeOwned(root, "etc/ssh/ssh_host_ed25519_key.pub", pub, 0o644, 0, 0); err != nil {
		return "", err
	}
	return "one ssh host key for every machine made from the box (it has no systemd to make each its own)", nil
}

// vagrantAccount finds the vagrant user, or adds it (with a group of its
// own, in group sudo when there is one, without a password: Vagrant logs
// in with keys).
func vagrantAccount(root *os.Root) (uid, gid int, home string, created bool, err error) {
	passwd, err := root.ReadFile("etc/passwd")
	if err != nil {
		return 0, 0, "", false, err
	}
	usedUID := map[int]bool{}
	for l := range strings.Lines(string(passwd)) {
		f := strings.Split(strings.TrimSuffix(l, "\n"), ":")
		if len(f) != 7 {
			continue
		}
		id, _ := strconv.Atoi(f[2])
		usedUID[id] = true
		if f[0] == VagrantUser {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil || uid == 0 {
				return 0, 0, "", false, fmt.Errorf("bad /etc/passwd line for %s", VagrantUser)
			}
			home := strings.TrimPrefix(path.Clean("/"+f[5]), "/")
			if home == "" {
				return 0, 0, "", false, fmt.Errorf("%s's home is /", VagrantUser)
			}
			return uid, gid, home, false, nil
		}
	}
	group, err := root.ReadFile("etc/group")
	if err != nil {
		return 0, 0, "", false, err
	}
	usedGID := map[int]bool{}
	for l := range strings.Lines(string(group)) {
		f := strings.Split(l, ":")
		if len(f) == 4 {
			id, _ := strconv.Atoi(f[2])
			usedGID[id] = true
			if f[0] == VagrantUser {
				return 0, 0, "", false, fmt.Errorf("/etc/group has a group %s but /etc/passwd no such user", VagrantUser)
			}
		}
	}
	uid = 1000
	for usedUID[uid] || usedGID[uid] {
		uid++
	}
	gid = uid
	home = "home/" + VagrantUser
	shell := "/bin/sh"
	if _, err := root.Stat("bin/bash"); err == nil {
		shell = "/bin/bash"
	}
	edits := []struct{ file, line string }{
		{"etc/passwd", fmt.Sprintf("%s:x:%d:%d:Vagrant:/%s:%s", VagrantUser, uid, gid, home, shell)},
		{"etc/shadow", VagrantUser + ":*::0:99999:7:::"},
		{"etc/group", fmt.Sprintf("%s:x:%d:", VagrantUser, gid)},
		{"etc/gshadow", VagrantUser + ":!::"},
	}
	for _, e := range edits {
		if err := appendAccount(root, e.file, e.line); err != nil {
			return 0, 0, "", false, err
		}
	}
	for _, file := range []string{"etc/group", "etc/gshadow"} {
		if err := addToGroup(root, file, "sudo", VagrantUser); err != nil {
			return 0, 0, "", false, err
		}
	}
	if err := copySkel(root, home, uid, gid); err != nil {
		return 0, 0, "", false, err
	}
	return uid, gid, home, true, nil
}

// appendAccount appends line to the account file, keeping its mode and
// owner; a missing shadow or gshadow file is left missing.
func appendAccount(root *os.Root, file, line string) error {
	fi, err := root.Lstat(file)
	if errors.Is(err, fs.ErrNotExist) && (file == "etc/shadow" || file == "etc/gshadow") {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("/%s is not a regular file", file)
	}
	data, err := root.ReadFile(file)
	if err != nil {
		return err
	}
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return rewrite(root, file, []byte(text+line+"\n"), fi)
}

// addToGroup adds user to the members (the last field) of group in the
// file, when both exist.
func addToGroup(root *os.Root, file, group, user string) error {
	fi, err := root.Lstat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	data, err := root.ReadFile(file)
	if err != nil {
		return err
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, group+":") {
			continue
		}
		f := strings.Split(l, ":")
		members := strings.FieldsFunc(f[len(f)-1], func(r rune) bool { return r == ',' })
		f[len(f)-1] = strings.Join(append(members, user), ",")
		lines[i] = strings.Join(f, ":")
		return rewrite(root, file, []byte(strings.Join(lines, "\n")), fi)
	}
	return nil
}

// rewrite replaces a file's contents, keeping the mode and owner fi had.
func rewrite(root *os.Root, file string, data []byte, fi fs.FileInfo) error {
	if err := root.WriteFile(file, data, fi.Mode().Perm()); err != nil {
		return err
	}
	return root.Chmod(file, fi.Mode().Perm())
}

// copySkel makes the new user's home from /etc/skel's plain files.
func copySkel(root *os.Root, home string, uid, gid int) error {
	if err := mkdirOwned(root, home, 0o755, uid, gid, false); err != nil {
		return err
	}
	entries, err := fs.ReadDir(root.FS(), "etc/skel")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, en := range entries {
		if !en.Type().IsRegular() {
			continue
		}
		data, err := root.ReadFile("etc/skel/" + en.Name())
		if err != nil {
			return err
		}
		if err := writeOwned(root, path.Join(home, en.Name()), data, 0o644, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// mkdirOwned makes the folder name (parents as root, 0755) and gives it its
// owner, and, when it is new or exact is set, its mode. A symlink there is
// refused: the write would go through it.
func mkdirOwned(root *os.Root, name string, mode fs.FileMode, uid, gid int, exact bool) error {
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := root.MkdirAll(name, mode); err != nil {
			return err
		}
		exact = true
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("/%s is not a folder", name)
	}
	if err := root.Lchown(name, uid, gid); err != nil {
		return err
	}
	if exact {
		return root.Chmod(name, mode)
	}
	return nil
}

// writeOwned replaces the file name (never through a symlink: one there is
// removed first) with data, mode and owner.
func writeOwned(root *os.Root, name string, data []byte, mode fs.FileMode, uid, gid int) error {
	return fsutil.WriteInRoot(root, name, data, mode, uid, gid)
}
