package forward

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/den-dev/den/internal/testenv"
)

// TestListenFamilies checks that a rule listens on its address family
// only: 0.0.0.0 (and any IPv4 address) is IPv4, :: is IPv6. Go's "tcp" and
// "udp" on 0.0.0.0 make a dual-stack socket, which opened a forward meant
// for IPv4 on every IPv6 address of the host too.
func TestListenFamilies(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		testenv.Skip(t, fmt.Sprintf("no IPv6 on this host: %v", err))
	} else {
		c.Close()
	}
	for _, proto := range []string{TCP, UDP} {
		t.Run(proto+" 0.0.0.0 is IPv4 only", func(t *testing.T) {
			port := freePort(t, proto)
			f, err := Listen([]Rule{{Protocol: proto, HostIP: "0.0.0.0", HostPort: port, GuestIP: "10.0.3.254", GuestPort: 80}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// The same port on ::1 is still free: nothing listens there.
			c, err := listenOn(proto, "::1", port)
			if err != nil {
				t.Fatalf("[::1]:%d is taken by a forward on 0.0.0.0: %v", port, err)
			}
			c.Close()
			if proto == TCP {
				if _, err := net.Dial("tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("dial [::1]:%d: %v, want connection refused", port, err)
				}
			}
		})
		t.Run(proto+" :: is IPv6 only", func(t *testing.T) {
			port := freePort(t, proto)
			f, err := Listen([]Rule{{Protocol: proto, HostIP: "::", HostPort: port, GuestIP: "10.0.3.254", GuestPort: 80}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c, err := listenOn(proto, "127.0.0.1", port)
			if err != nil {
				t.Fatalf("127.0.0.1:%d is taken by a forward on [::]: %v", port, err)
			}
			c.Close()
		})
		t.Run(proto+" an IPv4-mapped address is IPv4", func(t *testing.T) {
			port := freePort(t, proto)
			f, err := Listen([]Rule{{Protocol: proto, HostIP: "::ffff:127.0.0.1", HostPort: port, GuestIP: "10.0.3.254", GuestPort: 80}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if c, err := listenOn(proto, "127.0.0.1", port); err == nil {
				c.Close()
				t.Errorf("127.0.0.1:%d is free while a forward holds ::ffff:127.0.0.1", port)
			}
		})
	}
}

// listenOn binds ip:port with the family of ip.
func listenOn(proto, ip string, port int) (interface{ Close() error }, error) {
	network := proto + "4"
	if net.ParseIP(ip).To4() == nil {
		network = proto + "6"
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	if proto == UDP {
		return net.ListenPacket(network, addr)
	}
	return net.Listen(network, addr)
}
