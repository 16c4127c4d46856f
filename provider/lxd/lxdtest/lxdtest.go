// Package lxdtest holds what den's LXD tests share: trust tokens from
// this host's LXD and, for the cluster tests, a cluster of two LXD
// daemons on this machine. It talks to LXD only through its API.
package lxdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"
)

// Socket is this host's LXD (scripts/lxd-setup.sh starts it).
const Socket = "/var/lib/lxd/unix.socket"

// HTTPS is where scripts/lxd-setup.sh makes it listen.
const HTTPS = "https://127.0.0.1:8443"

// Token returns a trust token from the LXD at socket for a client called
// name ('lxc config trust add --name NAME').
func Token(socket, name string) (string, error) {
	c, err := lxdclient.ConnectLXDUnix(socket, nil)
	if err != nil {
		return "", err
	}
	defer c.Disconnect()
	op, err := c.CreateCertificateToken(api.CertificatesPost{Name: name, Type: api.CertificateTypeClient, Token: true})
	if err != nil {
		return "", err
	}
	opAPI := op.Get()
	tok, err := opAPI.ToCertificateAddToken()
	if err != nil {
		return "", err
	}
	return tok.String(), nil
}

// Untrust removes the client certificate certPEM from the trust store of
// the LXD at socket; a certificate it does not trust is no error.
func Untrust(socket, certPEM string) error {
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil {
		return fmt.Errorf("not a PEM certificate")
	}
	sum := sha256.Sum256(blk.Bytes)
	c, err := lxdclient.ConnectLXDUnix(socket, nil)
	if err != nil {
		return err
	}
	defer c.Disconnect()
	err = c.DeleteCertificate(hex.EncodeToString(sum[:]))
	if err != nil && api.StatusErrorCheck(err, 404) {
		return nil
	}
	return err
}

// Instances lists the names of the instances of the LXD at socket, in
// every project.
func Instances(socket string) ([]string, error) {
	c, err := lxdclient.ConnectLXDUnix(socket, nil)
	if err != nil {
		return nil, err
	}
	defer c.Disconnect()
	list, err := c.GetInstancesAllProjects(api.InstanceTypeAny)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, in := range list {
		out = append(out, in.Name)
	}
	return out, nil
}

// Cluster is a cluster of two LXD daemons on this machine, made by
// scripts/lxd-cluster.sh: members node1 and node2.
type Cluster struct {
	Dir    string // everything of the cluster
	Socket string // node1's unix socket
	URL    string // node1's HTTPS address
}

// StartCluster makes a cluster for t and removes it (daemons, namespaces,
// links, files) when t ends. The caller checks LXD tests can run first.
func StartCluster(t testing.TB) Cluster {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "lxd-cluster.sh")
	dir, err := os.MkdirTemp("/var/tmp", "den-lxd-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "down", dir).CombinedOutput(); err != nil {
			t.Errorf("cluster down: %v\n%s", err, out)
		}
	})
	if out, err := exec.Command("bash", script, "up", dir).CombinedOutput(); err != nil {
		t.Fatalf("cluster up: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	c := Cluster{Dir: dir}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "LXD_CLUSTER_SOCKET":
			c.Socket = v
		case "LXD_CLUSTER_URL":
			c.URL = v
		}
	}
	return c
}
