package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestCLIValidateHost checks that validate holds den.hcl against this
// host: what up would reject later is reported now, located.
func TestCLIValidateHost(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := ln.Addr().(*net.TCPAddr).Port
	hcl := fmt.Sprintf(`box    = "debian/bookworn"
memory = "99999T"
cpus   = 1000
bridge = "nobr0"

forward {
  guest   = 80
  host    = %d
}

forward {
  guest   = 81
  host    = 8081
  host_ip = "203.0.113.9"
}
`, held)
	dir := projectDir(t, hcl)
	r := den(t, dir, "", "validate")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	for _, w := range []string{
		"den.hcl:1:10: error: Unknown box", `did you mean "debian/bookworm"?`,
		"den.hcl:2:10: error: Memory above the host's",
		"den.hcl:3:10: error: More CPUs than the host has",
		`den.hcl:4:10: error: No such bridge`,
		fmt.Sprintf("den.hcl:8:13: error: Host port in use\n   8 |   host    = %d", held),
		`den.hcl:14:13: error: Not an address of this host`,
	} {
		if !strings.Contains(r.err, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.err)
		}
	}
	if strings.Contains(r.out, "is valid") {
		t.Errorf("validate said the file is valid:\n%s", r.out)
	}
	// A box name with path elements is refused by the decoder itself.
	r = den(t, projectDir(t, "box = \"../../etc\"\n"), "", "validate")
	if r.code != 1 || !strings.Contains(r.err, "den.hcl:1:7: error: Invalid box name") {
		t.Errorf("box with path elements: %d %q", r.code, r.err)
	}
}
