package forward

import (
	"net"
	"os"
	"testing"
)

func TestHolder(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	pid, cmd := Holder(Rule{Protocol: TCP, HostIP: "127.0.0.1", HostPort: port})
	if pid != os.Getpid() || len(cmd) == 0 {
		t.Errorf("Holder = %d %v, want this process (%d)", pid, cmd, os.Getpid())
	}
	l.Close()
	if pid, _ := Holder(Rule{Protocol: TCP, HostIP: "127.0.0.1", HostPort: port}); pid != 0 {
		t.Errorf("Holder of a free port = %d", pid)
	}
}
