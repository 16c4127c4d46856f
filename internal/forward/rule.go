package forward

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Protocols a Rule may name.
const (
	TCP = "tcp"
	UDP = "udp"
)

// Rule forwards HostIP:HostPort on the host to GuestIP:GuestPort in a guest.
type Rule struct {
	Protocol  string // "tcp" or "udp"
	HostIP    string // an IP literal; "0.0.0.0" or "::" for every address
	HostPort  int
	GuestIP   string // an IP literal, the guest's address on the bridge
	GuestPort int
}

// String returns the rule for people, as "127.0.0.1:8080 -> 10.0.3.254:80/tcp".
func (r Rule) String() string {
	return r.hostAddr() + " -> " + r.guestAddr() + "/" + r.Protocol
}

// Arg returns the rule in the compact form ParseRule reads, for passing rules
// on a command line: "tcp:127.0.0.1:8080:10.0.3.254:80". IPv6 addresses are
// bracketed: "tcp:[::1]:8080:[fd00::2]:80".
func (r Rule) Arg() string {
	return r.Protocol + ":" + r.hostAddr() + ":" + r.guestAddr()
}

// hostAddr is HostIP:HostPort, bracketed for IPv6.
func (r Rule) hostAddr() string {
	return net.JoinHostPort(r.HostIP, strconv.Itoa(r.HostPort))
}

// guestAddr is GuestIP:GuestPort, bracketed for IPv6.
func (r Rule) guestAddr() string {
	return net.JoinHostPort(r.GuestIP, strconv.Itoa(r.GuestPort))
}

// Validate checks the protocol, that both addresses are IP literals and that
// both ports are in 1-65535.
func (r Rule) Validate() error {
	if r.Protocol != TCP && r.Protocol != UDP {
		return fmt.Errorf("forward %s: protocol %q is not \"tcp\" or \"udp\"", r, r.Protocol)
	}
	if _, err := netip.ParseAddr(r.HostIP); err != nil {
		return fmt.Errorf("forward %s: host_ip %q is not an IP address", r, r.HostIP)
	}
	if _, err := netip.ParseAddr(r.GuestIP); err != nil {
		return fmt.Errorf("forward %s: guest address %q is not an IP address", r, r.GuestIP)
	}
	if r.HostPort < 1 || r.HostPort > 65535 {
		return fmt.Errorf("forward %s: host port %d is not in 1-65535", r, r.HostPort)
	}
	if r.GuestPort < 1 || r.GuestPort > 65535 {
		return fmt.Errorf("forward %s: guest port %d is not in 1-65535", r, r.GuestPort)
	}
	return nil
}

// ParseRule reads the form Arg writes, "PROTO:HOSTIP:HOSTPORT:GUESTIP:GUESTPORT"
// with IPv6 addresses in brackets, and validates the rule.
func ParseRule(s string) (Rule, error) {
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Rule{}, fmt.Errorf("forward rule %q: want PROTO:HOSTIP:HOSTPORT:GUESTIP:GUESTPORT", s)
	}
	hostIP, hostPort, rest, more, err := cutAddr(rest)
	if err != nil {
		return Rule{}, fmt.Errorf("forward rule %q: host address: %w", s, err)
	}
	if !more {
		return Rule{}, fmt.Errorf("forward rule %q: missing guest address", s)
	}
	guestIP, guestPort, rest, more, err := cutAddr(rest)
	if err != nil {
		return Rule{}, fmt.Errorf("forward rule %q: guest address: %w", s, err)
	}
	if more {
		return Rule{}, fmt.Errorf("forward rule %q: unexpected %q after the guest port", s, ":"+rest)
	}
	r := Rule{Protocol: proto, HostIP: hostIP, HostPort: hostPort, GuestIP: guestIP, GuestPort: guestPort}
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// cutAddr reads "IP:PORT" or "[IP]:PORT" from the front of s; more tells
// whether a colon followed the port, and rest is the text after it.
func cutAddr(s string) (ip string, port int, rest string, more bool, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, "", false, fmt.Errorf("missing ']' in %q", s)
		}
		ip, s = s[1:end], s[end+1:]
		if !strings.HasPrefix(s, ":") {
			return "", 0, "", false, fmt.Errorf("missing port after [%s]", ip)
		}
		s = s[1:]
	} else {
		var ok bool
		ip, s, ok = strings.Cut(s, ":")
		if ip == "" {
			return "", 0, "", false, errors.New("missing IP address (IPv6 ones go in brackets: [::1])")
		}
		if !ok {
			return "", 0, "", false, fmt.Errorf("missing port after %q", ip)
		}
	}
	p, rest, more := strings.Cut(s, ":")
	port, err = parsePort(p)
	if err != nil {
		return "", 0, "", false, err
	}
	return ip, port, rest, more, nil
}

// parsePort reads a decimal port number, digits only.
func parsePort(p string) (int, error) {
	if p == "" || strings.Trim(p, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number", p)
	}
	if len(p) > 5 {
		return 0, fmt.Errorf("port %s is not in 1-65535", p)
	}
	return strconv.Atoi(p)
}
