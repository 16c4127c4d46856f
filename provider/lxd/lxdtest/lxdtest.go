// Package lxdtest holds what den's LXD tests share: trust tokens from
// this host's LXD and, for the cluster tests, a cluster of two LXD
// daemons on this machine. It talks to LXD only through its API.
package lxdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"

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
