package forward

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// tcpRule is a tcp rule from 127.0.0.1:host to 10.0.3.254:80.
func tcpRule(hostIP string, host int) Rule {
	return Rule{Protocol: "tcp", HostIP: hostIP, HostPort: host, GuestIP: "10.0.3.254", GuestPort: 80}
}

func TestConflicts(t *testing.T) {
	udp := func(r Rule) Rule { r.Protocol = "udp"; return r }
	tests := []struct {
		name  string
		rules []Rule
		want  []string // in the error, in order; nil for no error
	}{
		{name: "none"},
		{name: "one", rules: []Rule{tcpRule("127.0.0.1", 8080)}},
		{name: "other ports", rules: []Rule{tcpRule("127.0.0.1", 8080), tcpRule("127.0.0.1", 8081)}},
		{name: "tcp and udp", rules: []Rule{tcpRule("127.0.0.1", 8080), udp(tcpRule("127.0.0.1", 8080))}},
		{name: "other addresses", rules: []Rule{tcpRule("127.0.0.1", 8080), tcpRule("127.0.0.2", 8080)}},
		{name: "ipv4 any and ipv6 loopback", rules: []Rule{tcpRule("0.0.0.0", 8080), tcpRule("::1", 8080)}},
		{
			name:  "same address",
			rules: []Rule{tcpRule("127.0.0.1", 8080), tcpRule("127.0.0.1", 8080)},
			want:  []string{"forwards 127.0.0.1:8080 -> 10.0.3.254:80/tcp and 127.0.0.1:8080 -> 10.0.3.254:80/tcp both use host port 8080 (tcp)"},
		},
		{
			name:  "ipv4 any first",
			rules: []Rule{tcpRule("0.0.0.0", 8080), tcpRule("127.0.0.1", 8080)},
			want:  []string{"0.0.0.0:8080 -> 10.0.3.254:80/tcp and 127.0.0.1:8080"},
		},
		{
			name:  "ipv4 any second, udp",
			rules: []Rule{udp(tcpRule("10.1.2.3", 53)), udp(tcpRule("0.0.0.0", 53))},
			want:  []string{"both use host port 53 (udp)"},
		},
		{name: "ipv6 any and ipv4 loopback", rules: []Rule{tcpRule("::", 8080), tcpRule("127.0.0.1", 8080)}},
		{name: "ipv6 any and ipv4 any", rules: []Rule{tcpRule("0.0.0.0", 8080), tcpRule("::", 8080)}},
		{
			name:  "ipv6 any covers ipv6",
			rules: []Rule{tcpRule("::", 8080), tcpRule("::1", 8080)},
			want:  []string{"[::]:8080 -> 10.0.3.254:80/tcp and [::1]:8080"},
		},
		{
			name:  "mapped ipv4",
			rules: []Rule{tcpRule("::ffff:127.0.0.1", 8080), tcpRule("127.0.0.1", 8080)},
			want:  []string{"both use host port 8080"},
		},
		{
			name:  "every pair",
			rules: []Rule{tcpRule("127.0.0.1", 8080), tcpRule("0.0.0.0", 8080), tcpRule("127.0.0.1", 9090), tcpRule("127.0.0.1", 9090)},
			want:  []string{"127.0.0.1:8080 -> 10.0.3.254:80/tcp and 0.0.0.0:8080", "; ", "127.0.0.1:9090 -> 10.0.3.254:80/tcp and 127.0.0.1:9090"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Conflicts(tc.rules)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Conflicts: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Conflicts = nil, want an error with %q", tc.want)
			}
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("Conflicts: %v is no *ConflictError", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("Conflicts: %q; want it to contain %q", err, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestCheckFree(t *testing.T) {
	takenTCP := holdTCP(t)
	takenUDP := holdUDP(t)
	free := freePort(t, "tcp")
	freeUDP := freePort(t, "udp")
	rules := []Rule{
		{Protocol: "tcp", HostIP: "127.0.0.1", HostPort: free, GuestIP: "10.0.3.254", GuestPort: 80},
		{Protocol: "tcp", HostIP: "127.0.0.1", HostPort: takenTCP, GuestIP: "10.0.3.254", GuestPort: 80},
		{Protocol: "udp", HostIP: "127.0.0.1", HostPort: freeUDP, GuestIP: "10.0.3.254", GuestPort: 53},
		{Protocol: "udp", HostIP: "127.0.0.1", HostPort: takenUDP, GuestIP: "10.0.3.254", GuestPort: 53},
	}

	err := CheckFree(rules)
	if err == nil {
		t.Fatal("CheckFree = nil, want the two taken ports")
	}
	want := "host port 127.0.0.1:" + strconv.Itoa(takenTCP) + " (tcp) is in use; " +
		"host port 127.0.0.1:" + strconv.Itoa(takenUDP) + " (udp) is in use"
	if err.Error() != want {
		t.Fatalf("CheckFree: %q, want %q", err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("CheckFree: errors.Is(%v, EADDRINUSE) = false", err)
	}
	var be *BindError
	if !errors.As(err, &be) || be.Rule != rules[1] {
		t.Fatalf("CheckFree: first *BindError is %+v, want rule %v", be, rules[1])
	}

	// The free ports were released again.
	if err := CheckFree([]Rule{rules[0], rules[2]}); err != nil {
		t.Fatalf("CheckFree(free ports): %v", err)
	}
}

// holdTCP listens on a loopback port until the test ends and returns it.
func holdTCP(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// holdUDP binds a loopback UDP port until the test ends and returns it.
func holdUDP(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
