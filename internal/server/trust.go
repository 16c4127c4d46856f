package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/den-dev/den/api"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/layout"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/selfcert"
)

// TrustStore is the list of client certificates den serve trusts, in
// DEN_HOME/serve/trust.json. `den serve trust add/list/remove` and
// /1.0/certificates change it; a running server reads it again when it
// changed, so a removed certificate stops working at its next request.
type TrustStore struct {
	path string
	lock string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	certs []api.Certificate
}

// NewTrustStore returns the trust store of home.
func NewTrustStore(home layout.Home) *TrustStore {
	dir := StateDir(home)
	return &TrustStore{path: filepath.Join(dir, "trust.json"), lock: filepath.Join(dir, "trust.lock")}
}

// load reads the store when the file changed.
func (t *TrustStore) load() ([]api.Certificate, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Lstat(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		t.certs, t.mtime, t.size = nil, time.Time{}, 0
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.ModTime().Equal(t.mtime) && fi.Size() == t.size && t.certs != nil {
		return t.certs, nil
	}
	b, err := fsutil.ReadRegular(t.path, 16<<20)
	if err != nil {
		return nil, err
	}
	var certs []api.Certificate
	if err := json.Unmarshal(b, &certs); err != nil {
		return nil, fmt.Errorf("%s: %w", t.path, err)
	}
	if certs == nil {
		certs = []api.Certificate{}
	}
	t.certs, t.mtime, t.size = certs, fi.ModTime(), fi.Size()
	return certs, nil
}

// Trusted tells whether the certificate with fingerprint fp is trusted,
// and its name.
func (t *TrustStore) Trusted(fp string) (string, bool) {
	certs, err := t.load()
	if err != nil {
		return "", false
	}
	for _, c := range certs {
		if c.Fingerprint == fp {
			return c.Name, true
		}
	}
	return "", false
}

// List returns the trusted certificates.
func (t *TrustStore) List() ([]api.Certificate, error) {
	certs, err := t.load()
	if certs == nil {
		certs = []api.Certificate{}
	}
	return slices.Clone(certs), err
}

// update changes the store under its lock.
func (t *TrustStore) update(fn func([]api.Certificate) ([]api.Certificate, error)) error {
	if err := os.MkdirAll(filepath.Dir(t.path), 0o700); err != nil {
		return err
	}
	lk, err := lock.Acquire(context.Background(), t.lock, "den serve trust", 3*time.Second)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	t.mu.Lock()
	t.certs = nil // read it again
	t.mu.Unlock()
	certs, err := t.load()
	if err != nil {
		return err
	}
	certs, err = fn(slices.Clone(certs))
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(certs, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(t.path, append(b, '\n'), 0o600)
}

// Add trusts the client certificate in pemData (a PEM CERTIFICATE block)
// under name (default: its subject's common name).
func (t *TrustStore) Add(name string, pemData []byte) (api.Certificate, error) {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return api.Certificate{}, errdefs.Newf(errdefs.Invalid, "not a PEM certificate: want a -----BEGIN CERTIFICATE----- block")
	}
	x, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return api.Certificate{}, errdefs.Newf(errdefs.Invalid, "certificate: %v", err)
	}
	if name == "" {
		name = x.Subject.CommonName
	}
	if name == "" {
		return api.Certificate{}, errdefs.Newf(errdefs.Invalid, "the certificate has no common name: give it a name")
	}
	if strings.ContainsAny(name, "\n\r\x00") {
		return api.Certificate{}, errdefs.Newf(errdefs.Invalid, "a certificate's name must be one line")
	}
	c := api.Certificate{Name: name, Fingerprint: Fingerprint(x.Raw), Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})), Added: time.Now().UTC()}
	err = t.update(func(certs []api.Certificate) ([]api.Certificate, error) {
		for _, o := range certs {
			if o.Fingerprint == c.Fingerprint {
				return nil, errdefs.Newf(errdefs.Exists, "certificate %s is already trusted as %q", c.Fingerprint[:16], o.Name)
			}
			if o.Name == c.Name {
				return nil, errdefs.Newf(errdefs.Exists, "a certificate named %q is already trusted; choose another name", c.Name)
			}
		}
		return append(certs, c), nil
	})
	return c, err
}

// Remove stops trusting the certificate named by its name or by a prefix
// of its fingerprint (at least 12 hex digits).
func (t *TrustStore) Remove(which string) error {
	return t.update(func(certs []api.Certificate) ([]api.Certificate, error) {
		i := slices.IndexFunc(certs, func(c api.Certificate) bool {
			return c.Name == which || (len(which) >= 12 && strings.HasPrefix(c.Fingerprint, strings.ToLower(which)))
		})
		if i < 0 {
			return nil, errdefs.Newf(errdefs.NotFound, "no trusted certificate named %q or with that fingerprint", which)
		}
		return slices.Delete(certs, i, i+1), nil
	})
}

// serverCert is the server's TLS certificate.
type serverCert struct {
	pair        tls.Certificate
	pem         []byte
	fingerprint string
}

// loadOrCreateCert reads server.crt and server.key in dir, making them
// on first use: EC P-384, self-signed, ten years, valid for this host's
// name, loopback and hosts.
func loadOrCreateCert(dir string, hosts []string) (*serverCert, error) {
	crt, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if _, err := os.Lstat(crt); errors.Is(err, fs.ErrNotExist) {
		if err := createCert(crt, key, hosts); err != nil {
			return nil, fmt.Errorf("make the server certificate: %w", err)
		}
	}
	certPEM, err := fsutil.ReadRegular(crt, 1<<20)
	if err != nil {
		return nil, err
	}
	keyPEM, err := fsutil.ReadRegular(key, 1<<20)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server certificate %s: %w", crt, err)
	}
	return &serverCert{pair: pair, pem: certPEM, fingerprint: Fingerprint(pair.Certificate[0])}, nil
}

func createCert(crt, key string, hosts []string) error {
	hostname, _ := os.Hostname()
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	if hostname != "" {
		dnsNames = append(dnsNames, hostname)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if h != "" && !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return selfcert.Write(crt, key, "den serve on "+hostname, x509.ExtKeyUsageServerAuth, dnsNames, ips)
}
