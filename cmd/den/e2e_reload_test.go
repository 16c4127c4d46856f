package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// exchange sends "ping" through the host port and returns the reply, or
// the error of the last try. The guest's listener may not be up yet, so it
// tries for a while (no timing is asserted).
func exchange(port int) (string, error) {
	var last error
	for range 50 {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "", err // nothing listens on the host: no retry helps
		}
		if err != nil {
			// The forwarder resets a connection the guest refused (its
			// listener is not up yet), sometimes before connect returns.
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("ping\n"))
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		c.Close()
		if err == nil && len(b) > 0 {
			return string(b), nil
		}
		last = fmt.Errorf("empty reply (%v)", err)
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}

// listenInGuest starts a one-shot listener on port in the guest: it answers
// "pong" and keeps what it was sent in /tmp/req.
func listenInGuest(t *testing.T, dir string, port int) {
	t.Helper()
	mustDen(t, dir, "ssh", "-c", fmt.Sprintf("setsid sh -c 'echo pong | nc -N -l %d > /tmp/req' </dev/null >/dev/null 2>&1 &", port))
}

func TestE2EForwardAndReload(t *testing.T) {
	needE2E(t)
	port := freePort(t)
	hcl := fmt.Sprintf(`box    = "debian/bookworm"
memory = "256M"

forward {
  guest = 7777
  host  = %d
}
`, port)
	dir := newProject(t, "test-forward", hcl)
	up := mustDen(t, dir, "up")
	if want := fmt.Sprintf("7777 (guest) => 127.0.0.1:%d (host, tcp)", port); !strings.Contains(up, want) {
		t.Errorf("up output lacks %q", want)
	}

	// A TCP exchange from the host port to a listener in the guest.
	listenInGuest(t, dir, 7777)
	reply, err := exchange(port)
	if err != nil || reply != "pong\n" {
		t.Fatalf("exchange through 127.0.0.1:%d: %q %v", port, reply, err)
	}
	if got := mustDen(t, dir, "ssh", "-c", "cat /tmp/req"); got != "ping\n" {
		t.Errorf("the guest received %q", got)
	}

	// Another project cannot take the same host port: an error before boot.
	other := newProject(t, "test-forward-clash", hcl)
	r := den(t, other, "", "up")
	if r.code == 0 || !strings.Contains(r.err, `in use by den machine "default" of `+dir) {
		t.Errorf("up with a taken host port: exit %d, %q", r.code, r.err)
	}
	if st := status(t, other); st[0].State == "running" {
		t.Errorf("the clashing machine booted: %+v", st)
	}

	// After halt the port is closed.
	mustDen(t, dir, "halt")
	if _, err := exchange(port); err == nil {
		t.Errorf("127.0.0.1:%d still answers after halt", port)
	}

	// reload applies a new memory limit and keeps the disk.
	mustDen(t, dir, "up")
	mustDen(t, dir, "ssh", "-c", "echo kept > ~/kept.txt")
	newHCL := strings.Replace(hcl, `memory = "256M"`, `memory = "384M"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "den.hcl"), []byte(newHCL), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDen(t, dir, "reload")
	st := status(t, dir)
	if st[0].State != "running" {
		t.Fatalf("after reload: %+v", st)
	}
	if got := cgroupValue(t, st[0].Container, "memory", "memory.limit_in_bytes", "memory.max"); got != strconv.Itoa(384<<20) {
		t.Errorf("memory limit after reload = %s, want %d", got, 384<<20)
	}
	if got := mustDen(t, dir, "ssh", "-c", "cat ~/kept.txt"); got != "kept\n" {
		t.Errorf("file written before reload: %q", got)
	}
	// The forward is back after reload.
	listenInGuest(t, dir, 7777)
	if reply, err := exchange(port); err != nil || reply != "pong\n" {
		t.Errorf("exchange after reload: %q %v", reply, err)
	}
}
