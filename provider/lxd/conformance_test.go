package lxd

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/den-dev/den/box"
	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/testenv"
	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provider/lxd/lxdtest"
	"github.com/den-dev/den/provider/providertest"
)

// testHome makes a DEN_HOME with the test box in it, removed at the end.
func testHome(t *testing.T) (string, *box.Box) {
	t.Helper()
	boxFile := testenv.LXD(t)
	home, err := os.MkdirTemp("/var/tmp", "den-lxd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fsutil.RemoveTree(home); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	f, err := os.Open(boxFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := box.NewStore(home).Add(context.Background(), "test/box", f, box.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return home, b
}

// harness is the conformance suite's harness for machines that x places.
func harness(t *testing.T, p *Provider, b *box.Box, x *config.LXD) providertest.Harness {
	var n atomic.Int32
	prefix := fmt.Sprintf("den-conf-%d", time.Now().UnixNano()%100000)
	return providertest.Harness{
		Provider:  p,
		RealGuest: true,
		Name:      func(t *testing.T) string { return fmt.Sprintf("%s-%d", prefix, n.Add(1)) },
		Spec: func(t *testing.T, name string) *provider.Spec {
			// No den network: the suite checks the contract, and eth0
			// takes the profile's network (DHCP).
			return &provider.Spec{Name: name, Rootfs: b.Rootfs(), Box: b.Name, BoxVersion: b.Version, Hostname: "conformance", Memory: 256 << 20, CPUs: 1, Engine: x}
		},
	}
}

// TestConformanceLocal runs the provider contract's suite against this
// host's LXD through its unix socket.
func TestConformanceLocal(t *testing.T) {
	home, b := testHome(t)
	providertest.Run(t, harness(t, New(home), b, nil))
}

// TestConformanceRemote runs the suite against the same server as a
// remote over HTTPS on 127.0.0.1, trusted with a token.
func TestConformanceRemote(t *testing.T) {
	home, b := testHome(t)
	p := New(home)
	addSelf(t, p, "self")
	providertest.Run(t, harness(t, p, b, &config.LXD{Remote: "self"}))
}

// addSelf adds this host's LXD as remote name over HTTPS (a token from
// its socket) and makes it forget den's certificate when the test ends.
func addSelf(t *testing.T, p *Provider, name string) {
	t.Helper()
	token, err := lxdtest.Token(lxdtest.Socket, "den-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddRemote(context.Background(), name, lxdtest.HTTPS, AddOptions{Token: token}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cert, err := os.ReadFile(p.certPath())
		if err == nil {
			err = lxdtest.Untrust(lxdtest.Socket, string(cert))
		}
		if err != nil {
			t.Errorf("cleanup: untrust den's certificate: %v", err)
		}
	})
}

// TestConformanceCluster runs the suite against a cluster of two LXD
// daemons on this machine (scripts/lxd-cluster.sh), the machines placed
// on the member that does not answer den's requests.
func TestConformanceCluster(t *testing.T) {
	home, b := testHome(t)
	c := lxdtest.StartCluster(t)
	p := New(home)
	token, err := lxdtest.Token(c.Socket, "den-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddRemote(context.Background(), "cl", c.URL, AddOptions{Token: token}); err != nil {
		t.Fatal(err)
	}
	providertest.Run(t, harness(t, p, b, &config.LXD{Remote: "cl", Target: "node2"}))
}
