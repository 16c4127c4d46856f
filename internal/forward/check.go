package forward

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// BindError is a host port that could not be bound for a rule. Its message
// says why in words ("host port 127.0.0.1:8080 (tcp) is in use"); Err is the
// error from the system, so errors.Is(err, syscall.EADDRINUSE) works.
type BindError struct {
	Rule Rule
	Err  error
}

// Error describes the failed bind, naming the host address and protocol.
func (e *BindError) Error() string {
	what := fmt.Sprintf("host port %s (%s)", e.Rule.hostAddr(), e.Rule.Protocol)
	switch {
	case errors.Is(e.Err, syscall.EADDRINUSE):
		return what + " is in use"
	case errors.Is(e.Err, syscall.EACCES):
		return what + ": permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE"
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("%s: %q is not an address of this host", what, e.Rule.HostIP)
	}
	return fmt.Sprintf("%s: %v", what, e.Err)
}

// Unwrap returns the system's error.
func (e *BindError) Unwrap() error { return e.Err }

// ConflictError is two rules that want the same host port: same protocol and
// port, and host addresses that overlap.
type ConflictError struct {
	A, B Rule
}

// Error names both rules.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("forwards %s and %s both use host port %d (%s)", e.A, e.B, e.A.HostPort, e.A.Protocol)
}

// errorList is several errors reported as one, on one line.
type errorList []error

func (l errorList) Error() string {
	msgs := make([]string, len(l))
	for i, err := range l {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (l errorList) Unwrap() []error { return l }

// join returns nil, the only error, or an errorList.
func join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errorList(errs)
}

// CheckFree binds each rule's host address (tcp or udp), one at a time, and
// releases it at once. It returns nil when all could be bound, or one error
// listing every rule that could not, each a *BindError ("host port
// 127.0.0.1:8080 (tcp) is in use"; find them with errors.As). Rules that
// collide with each other are Conflicts' business, not CheckFree's. A port
// that is free now may be taken before Listen binds it; Listen reports that.
func CheckFree(rules []Rule) error {
	var errs []error
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := bind(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Close()
	}
	return join(errs)
}

// bind listens on the rule's host address, in its address family only:
// 0.0.0.0, an IPv4 address or an IPv4-mapped one on IPv4 ("tcp4",
// "udp4"), :: and other IPv6 addresses on IPv6 ("tcp6", "udp6", which Go
// makes IPv6-only). Go's "tcp" on 0.0.0.0 would make a dual-stack socket
// that also opens the port on every IPv6 address. It returns a
// *net.TCPListener or a *net.UDPConn, or a *BindError.
func bind(r Rule) (interface{ Close() error }, error) {
	var (
		c   interface{ Close() error }
		err error
	)
	ip, perr := netip.ParseAddr(r.HostIP)
	if perr != nil {
		return nil, fmt.Errorf("forward %s: host_ip %q is not an IP address", r, r.HostIP)
	}
	family, addr := "6", r.hostAddr()
	if ip.Unmap().Is4() {
		family = "4"
		addr = netip.AddrPortFrom(ip.Unmap(), uint16(r.HostPort)).String()
	}
	switch r.Protocol {
	case TCP:
		c, err = net.Listen(TCP+family, addr)
	case UDP:
		c, err = net.ListenPacket(UDP+family, addr)
	default:
		return nil, fmt.Errorf("forward %s: protocol %q is not \"tcp\" or \"udp\"", r, r.Protocol)
	}
	if err != nil {
		return nil, &BindError{Rule: r, Err: err}
	}
	return c, nil
}

// Conflicts reports rules that cannot all be bound at once: two rules with
// the same protocol and host port whose host addresses overlap. Equal
// addresses overlap; 0.0.0.0 overlaps every IPv4 address and "::" every
// IPv6 address (den listens on each family alone), so 0.0.0.0 and "::"
// do not overlap: Linux binds both. The error lists every pair, each a
// *ConflictError.
func Conflicts(rules []Rule) error {
	var errs []error
	for i, a := range rules {
		for _, b := range rules[i+1:] {
			if a.Protocol == b.Protocol && a.HostPort == b.HostPort && Overlap(a.HostIP, b.HostIP) {
				errs = append(errs, &ConflictError{A: a, B: b})
			}
		}
	}
	return join(errs)
}

// Overlap tells whether binding one address and port keeps the other from
// being bound. Unparsable addresses overlap only when they are equal.
func Overlap(a, b string) bool {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	if errX != nil || errY != nil {
		return a == b
	}
	x, y = x.Unmap().WithZone(""), y.Unmap().WithZone("")
	switch {
	case x == y:
		return true
	case x == netip.IPv6Unspecified():
		return y.Is6()
	case y == netip.IPv6Unspecified():
		return x.Is6()
	case x == netip.IPv4Unspecified():
		return y.Is4()
	case y == netip.IPv4Unspecified():
		return x.Is4()
	}
	return false
}
