package forward

import (
	"strings"
	"testing"
)

func TestRuleString(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{
			name: "ipv4 tcp",
			rule: Rule{Protocol: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestIP: "10.0.3.254", GuestPort: 80},
			want: "127.0.0.1:8080 -> 10.0.3.254:80/tcp",
		},
		{
			name: "ipv6 udp",
			rule: Rule{Protocol: "udp", HostIP: "::1", HostPort: 5353, GuestIP: "fd00::2", GuestPort: 53},
			want: "[::1]:5353 -> [fd00::2]:53/udp",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rule.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseRuleRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want Rule
	}{
		{
			name: "tcp loopback",
			arg:  "tcp:127.0.0.1:8080:10.0.3.254:80",
			want: Rule{Protocol: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestIP: "10.0.3.254", GuestPort: 80},
		},
		{
			name: "udp every address",
			arg:  "udp:0.0.0.0:5353:10.0.3.7:53",
			want: Rule{Protocol: "udp", HostIP: "0.0.0.0", HostPort: 5353, GuestIP: "10.0.3.7", GuestPort: 53},
		},
		{
			name: "ipv6 host",
			arg:  "tcp:[::1]:2222:10.0.3.9:22",
			want: Rule{Protocol: "tcp", HostIP: "::1", HostPort: 2222, GuestIP: "10.0.3.9", GuestPort: 22},
		},
		{
			name: "ipv6 both",
			arg:  "tcp:[::]:65535:[fd00::2]:1",
			want: Rule{Protocol: "tcp", HostIP: "::", HostPort: 65535, GuestIP: "fd00::2", GuestPort: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRule(tc.arg)
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tc.arg, err)
			}
			if got != tc.want {
				t.Fatalf("ParseRule(%q) = %+v, want %+v", tc.arg, got, tc.want)
			}
			if arg := got.Arg(); arg != tc.arg {
				t.Fatalf("Arg() = %q, want %q", arg, tc.arg)
			}
			again, err := ParseRule(got.Arg())
			if err != nil || again != got {
				t.Fatalf("ParseRule(Arg()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want string // in the error
	}{
		{name: "empty", arg: "", want: "want PROTO:HOSTIP:HOSTPORT:GUESTIP:GUESTPORT"},
		{name: "bad protocol", arg: "sctp:127.0.0.1:8080:10.0.3.254:80", want: `protocol "sctp"`},
		{name: "no guest", arg: "tcp:127.0.0.1:8080", want: "missing guest address"},
		{name: "no guest port", arg: "tcp:127.0.0.1:8080:10.0.3.254", want: "missing port"},
		{name: "trailing colon", arg: "tcp:127.0.0.1:8080:10.0.3.254:80:", want: `unexpected ":"`},
		{name: "extra field", arg: "tcp:127.0.0.1:8080:10.0.3.254:80:1", want: `unexpected ":1"`},
		{name: "host name", arg: "tcp:localhost:8080:10.0.3.254:80", want: `host_ip "localhost" is not an IP address`},
		{name: "guest name", arg: "tcp:127.0.0.1:8080:web:80", want: `guest address "web" is not an IP address`},
		{name: "port zero", arg: "tcp:127.0.0.1:0:10.0.3.254:80", want: "host port 0 is not in 1-65535"},
		{name: "port too big", arg: "tcp:127.0.0.1:8080:10.0.3.254:65536", want: "guest port 65536 is not in 1-65535"},
		{name: "port huge", arg: "tcp:127.0.0.1:99999999999:10.0.3.254:80", want: "not in 1-65535"},
		{name: "port signed", arg: "tcp:127.0.0.1:+80:10.0.3.254:80", want: `port "+80" is not a number`},
		{name: "unbracketed ipv6", arg: "tcp:::1:8080:10.0.3.254:80", want: "host address: missing IP address"},
		{name: "no guest ip", arg: "tcp:127.0.0.1:8080::80", want: "guest address: missing IP address"},
		{name: "unclosed bracket", arg: "tcp:[::1:8080:10.0.3.254:80", want: "missing ']'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRule(tc.arg)
			if err == nil {
				t.Fatalf("ParseRule(%q) = %+v, want an error", tc.arg, r)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseRule(%q): %v; want it to contain %q", tc.arg, err, tc.want)
			}
		})
	}
}
