// Package hostcmd runs a command on the host as a given user: as den's own
// user with den's environment, or, when den runs as root for someone else
// (sudo, a server), with that user's credentials and a clean environment.
// The command runs in a process group of its own, which ends with it when
// the context does; its output is streamed to writers.
package hostcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// User is a host account a command runs as.
type User struct {
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups
	Name   string   // login name
	Home   string   // home folder
}

func (u *User) String() string {
	if u.Name != "" {
		return fmt.Sprintf("%s (uid %d)", u.Name, u.UID)
	}
	return fmt.Sprintf("uid %d", u.UID)
}

// Current returns the user this process runs as, with its groups.
func Current() (*User, error) {
	u := &User{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	groups, err := os.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("read den's groups: %w", err)
	}
	for _, g := range groups {
		u.Groups = append(u.Groups, uint32(g))
	}
	if acct, err := user.LookupId(strconv.Itoa(int(u.UID))); err == nil {
		u.Name, u.Home = acct.Username, acct.HomeDir
	} else {
		u.Home, _ = os.UserHomeDir()
	}
	return u, nil
}

// Lookup returns the account of uid, with gid as its group and the
// account's supplementary groups. A uid without an account is an error:
// den runs nothing as a user it cannot name.
func Lookup(uid, gid uint32) (*User, error) {
	acct, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil, fmt.Errorf("look up the account of uid %d: %w", uid, err)
	}
	u := &User{UID: uid, GID: gid, Name: acct.Username, Home: acct.HomeDir}
	ids, err := acct.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("look up the groups of %s: %w", acct.Username, err)
	}
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(u.Groups, uint32(g)) {
			u.Groups = append(u.Groups, uint32(g))
		}
	}
	return u, nil
}

// Cmd is a command to run on the host.
type Cmd struct {
	Argv   []string  // the program (an absolute path or one found in PATH) and its arguments
	Dir    string    // the folder it runs in
	Env    []string  // NAME=value pairs added to its environment
	User   *User     // who it runs as; required
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded
}

// KillDelay is how long a command gets to end after SIGTERM once its
// context has ended, before its process group is killed.
var KillDelay = 5 * time.Second

// OutputGrace is how long Run keeps reading the output after the command
// exited: processes it left in the background may hold its output open,
// and Run does not wait for them.
var OutputGrace = time.Second

// cleanPath is the PATH of a command run for another user.
const cleanPath = "/usr/local/bin:/usr/bin:/bin"

// Run runs c and returns its exit status (128+N when signal N ended it).
// As den's own user it gets den's environment plus c.Env; as another user
// (den must be root for that) it gets that user's credentials and a clean
// environment: HOME, USER, LOGNAME, a plain PATH, den's locale and TERM,
// plus c.Env. The error is for a command that could not start and for
// ctx's end, which ends the command's whole process group.
func Run(ctx context.Context, c Cmd) (int, error) {
	if len(c.Argv) == 0 {
		return -1, errors.New("no command")
	}
	if c.User == nil {
		return -1, errors.New("no user to run the command as")
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.User.UID == uint32(os.Geteuid()) && c.User.GID == uint32(os.Getegid()) {
		cmd.Env = append(os.Environ(), c.Env...)
	} else {
		if os.Geteuid() != 0 {
			return -1, fmt.Errorf("den runs as uid %d and cannot run a command as %s", os.Geteuid(), c.User)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.User.UID, Gid: c.User.GID, Groups: c.User.Groups}
		cmd.Env = append(cleanEnv(c.User), c.Env...)
	}
	// The command writes into pipes of its own (not Go's copying pipes), so
	// that Run can stop reading when the command has exited, whatever it
	// left running in the background.
	var copies sync.WaitGroup
	var readers []*os.File
	var writers []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for _, o := range []struct {
		w   io.Writer
		dst *io.Writer
	}{{c.Stdout, &cmd.Stdout}, {c.Stderr, &cmd.Stderr}} {
		if o.w == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(readers)
			closeAll(writers)
			return -1, err
		}
		readers, writers = append(readers, r), append(writers, w)
		*o.dst = w
		copies.Add(1)
		go func() {
			defer copies.Done()
			io.Copy(o.w, r)
		}()
	}
	err := cmd.Start()
	closeAll(writers)
	if err != nil {
		closeAll(readers)
		copies.Wait()
		return -1, fmt.Errorf("start %s: %w", c.Argv[0], err)
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(KillDelay):
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
	}()
	err = cmd.Wait()
	close(done)
	<-stopped
	// Read what the command wrote; stop after OutputGrace if something it
	// left behind keeps its output open.
	flushed := make(chan struct{})
	go func() {
		copies.Wait()
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(OutputGrace):
		closeAll(readers)
		<-flushed
	}
	closeAll(readers)
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// cleanEnv is the environment of a command run for u.
func cleanEnv(u *User) []string {
	home := u.Home
	if home == "" {
		home = "/"
	}
	env := []string{"HOME=" + home, "PATH=" + cleanPath}
	if u.Name != "" {
		env = append(env, "USER="+u.Name, "LOGNAME="+u.Name)
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "LANG" || name == "LANGUAGE" || name == "TERM" || name == "TZ" || strings.HasPrefix(name, "LC_") {
			env = append(env, kv)
		}
	}
	return env
}
