package lxd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	lxdclient "github.com/canonical/lxd/client"
	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/internal/config"
	"github.com/den-dev/den/internal/errdefs"
	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/lock"
	"github.com/den-dev/den/internal/selfcert"
)

// Remote is an LXD server den reaches over HTTPS, as 'den remote add'
// recorded it: its address and the certificate it presented then, which
// every later connection must present again (pinned).
type Remote struct {
	Name       string `json:"-"`
	Addr       string `json:"addr"`                  // https://host:8443
	ServerCert string `json:"server_cert,omitempty"` // PEM; empty for local
}

// Local reports whether r is this host's server, reached over its socket.
func (r Remote) Local() bool { return r.Name == config.LocalRemote }

// Fingerprint is the sha256 of the pinned server certificate, as LXD shows it.
func (r Remote) Fingerprint() string {
	if blk, _ := pem.Decode([]byte(r.ServerCert)); blk != nil {
		sum := sha256.Sum256(blk.Bytes)
		return hex.EncodeToString(sum[:])
	}
	return ""
}

type remotesFile struct {
	Remotes map[string]Remote `json:"remotes"`
}

var remoteNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (p *Provider) remotesPath() string { return filepath.Join(p.dir, "remotes.json") }
func (p *Provider) certPath() string    { return filepath.Join(p.dir, "client.crt") }
func (p *Provider) keyPath() string     { return filepath.Join(p.dir, "client.key") }

func (p *Provider) readRemotes() (remotesFile, error) {
	f := remotesFile{Remotes: map[string]Remote{}}
	b, err := fsutil.ReadRegular(p.remotesPath(), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s is damaged: %w", p.remotesPath(), err)
	}
	if f.Remotes == nil {
		f.Remotes = map[string]Remote{}
	}
	return f, nil
}

// Remotes lists the remotes: "local" (this host's server) first, then
// the added ones by name.
func (p *Provider) Remotes() ([]Remote, error) {
	f, err := p.readRemotes()
	if err != nil {
		return nil, err
	}
	out := []Remote{{Name: config.LocalRemote, Addr: "unix://" + localSocket()}}
	for _, name := range sortedKeys(f.Remotes) {
		r := f.Remotes[name]
		r.Name = name
		out = append(out, r)
	}
	return out, nil
}

// remote returns the remote called name.
func (p *Provider) remote(name string) (Remote, bool, error) {
	rs, err := p.Remotes()
	if err != nil {
		return Remote{}, false, err
	}
	i := slices.IndexFunc(rs, func(r Remote) bool { return r.Name == name })
	if i < 0 {
		return Remote{}, false, nil
	}
	return rs[i], true, nil
}

// localSocket is the unix socket of this host's LXD, as LXD's own client
// finds it.
func localSocket() string {
	if s := os.Getenv("LXD_SOCKET"); s != "" {
		return s
	}
	if d := os.Getenv("LXD_DIR"); d != "" {
		return filepath.Join(d, "unix.socket")
	}
	if _, err := os.Stat("/var/snap/lxd/common/lxd/unix.socket"); err == nil {
		return "/var/snap/lxd/common/lxd/unix.socket"
	}
	return "/var/lib/lxd/unix.socket"
}

// editRemotes changes remotes.json under its lock.
func (p *Provider) editRemotes(ctx context.Context, fn func(*remotesFile) error) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	lk, err := lock.Acquire(ctx, filepath.Join(p.dir, "remotes.lock"), "den remote", 10*time.Second)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	f, err := p.readRemotes()
	if err != nil {
		return err
	}
	if err := fn(&f); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(p.remotesPath(), append(b, '\n'), 0o600)
}

// AddOptions say how 'den remote add' gets den trusted by the server.
type AddOptions struct {
	// Token is a trust token from 'lxc config trust add' on the server: it
	// names the server's certificate, which den checks. Password is the
	// server's core.trust_password instead; then den has no way to check
	// the certificate and takes it only with AcceptCertificate.
	Token, Password   string
	AcceptCertificate bool
}

// AddRemote adds the LXD server at addr as remote name: den checks the
// server's certificate (against the token, or accepts it as told), has
// the server trust den's client certificate (made on first use in
// DEN_HOME/lxd), and pins the server's certificate. Nothing is recorded
// unless the server trusts den at the end.
func (p *Provider) AddRemote(ctx context.Context, name, addr string, opts AddOptions) (Remote, error) {
	if !remoteNameRE.MatchString(name) {
		return Remote{}, errdefs.Newf(errdefs.Invalid, "%q is not a remote name: use letters, digits, '.', '_' and '-'", name)
	}
	if name == config.LocalRemote {
		return Remote{}, errdefs.Newf(errdefs.Invalid, "%q is this host's LXD (its unix socket): pick another name", name)
	}
	if _, ok, err := p.remote(name); err != nil {
		return Remote{}, err
	} else if ok {
		return Remote{}, errdefs.Newf(errdefs.Exists, "remote %q exists already: 'den remote remove %s' first", name, name)
	}
	if (opts.Token == "") == (opts.Password == "") {
		return Remote{}, errdefs.Newf(errdefs.Invalid, "give --token (from 'lxc config trust add' on the server) or --password (the server's core.trust_password)")
	}
	u, err := remoteURL(addr)
	if err != nil {
		return Remote{}, err
	}
	var tok *api.CertificateAddToken
	if opts.Token != "" {
		if tok, err = parseToken(opts.Token); err != nil {
			return Remote{}, err
		}
	}
	certPEM, fp, err := fetchServerCert(ctx, u)
	if err != nil {
		return Remote{}, fmt.Errorf("remote %q: %w", name, err)
	}
	switch {
	case tok != nil && !strings.EqualFold(tok.Fingerprint, fp):
		return Remote{}, errdefs.Newf(errdefs.Invalid, "remote %q: the server at %s presents certificate %s, but the token was made by the server with certificate %s: is this the right address? (den does not send the token to another server)", name, u, fp, tok.Fingerprint)
	case tok == nil && !opts.AcceptCertificate:
		return Remote{}, errdefs.Newf(errdefs.Invalid, "remote %q: the server at %s presents certificate fingerprint %s; check it on the server ('lxc info | grep fingerprint') and pass --accept-certificate, or use a --token, which names it", name, u, fp)
	}
	r := Remote{Name: name, Addr: u, ServerCert: certPEM}
	if err := p.ensureClientCert(); err != nil {
		return Remote{}, err
	}
	c, err := p.connectHTTPS(ctx, r)
	if err != nil {
		return Remote{}, err
	}
	defer c.Disconnect()
	info, err := getServer(ctx, c)
	if err != nil {
		return Remote{}, fmt.Errorf("remote %q (%s): %w", name, u, err)
	}
	if info.Auth != "trusted" {
		secret := opts.Password
		if tok != nil {
			secret = opts.Token
		}
		host, _ := os.Hostname()
		req := api.CertificatesPost{Name: "den@" + host, Type: api.CertificateTypeClient, Password: secret, TrustToken: secret}
		if err := c.CreateCertificate(req); err != nil {
			what := "password"
			if tok != nil {
				what = "token (wrong, expired or used already: make a new one with 'lxc config trust add' on the server)"
			}
			return Remote{}, errdefs.Newf(errdefs.Invalid, "remote %q (%s) refused the %s: %v", name, u, what, err)
		}
		if info, _, err = c.GetServer(); err != nil {
			return Remote{}, fmt.Errorf("remote %q (%s): %w", name, u, err)
		}
		if info.Auth != "trusted" {
			return Remote{}, fmt.Errorf("remote %q (%s) took the request but does not trust den's certificate", name, u)
		}
	}
	err = p.editRemotes(ctx, func(f *remotesFile) error {
		if _, ok := f.Remotes[name]; ok {
			return errdefs.Newf(errdefs.Exists, "remote %q exists already", name)
		}
		f.Remotes[name] = r
		return nil
	})
	return r, err
}

// RemoveRemote forgets remote name (its server keeps den's certificate
// among its trusted ones until someone removes it there).
func (p *Provider) RemoveRemote(ctx context.Context, name string) error {
	if name == config.LocalRemote {
		return errdefs.Newf(errdefs.Invalid, "%q is this host's LXD: it cannot be removed", name)
	}
	if used := p.machinesOn(name); len(used) > 0 {
		return errdefs.Newf(errdefs.Exists, "remote %q still holds den's machines %s: destroy them first ('den global-status' shows where they are)", name, strings.Join(used, ", "))
	}
	err := p.editRemotes(ctx, func(f *remotesFile) error {
		if _, ok := f.Remotes[name]; !ok {
			return errdefs.Newf(errdefs.NotFound, "no remote %q ('den remote list' shows them)", name)
		}
		delete(f.Remotes, name)
		return nil
	})
	if err == nil {
		p.mu.Lock()
		delete(p.servers, name)
		p.mu.Unlock()
	}
	return err
}

// machinesOn lists the machines den placed on remote name.
func (p *Provider) machinesOn(name string) []string {
	paths, _ := filepath.Glob(filepath.Join(p.dir, "machines", "*.json"))
	var out []string
	for _, path := range paths {
		m := strings.TrimSuffix(filepath.Base(path), ".json")
		if pl, err := p.placed(m); err == nil && pl != nil && pl.Remote == name {
			out = append(out, m)
		}
	}
	return out
}

// remoteURL checks an https URL and adds LXD's port when it has none.
func remoteURL(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return "", errdefs.Newf(errdefs.Invalid, "%q is not an LXD server address: write https://HOST:8443", addr)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "8443")
	}
	return "https://" + u.Host, nil
}

// parseToken decodes an LXD trust token (base64 JSON).
func parseToken(s string) (*api.CertificateAddToken, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	var t api.CertificateAddToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Fingerprint == "" || t.Secret == "" {
		return nil, errdefs.Newf(errdefs.Invalid, "this is not an LXD trust token: make one with 'lxc config trust add' on the server and pass what it prints")
	}
	return &t, nil
}

// fetchServerCert connects to the server without checking its certificate
// and returns that certificate (PEM) and its sha256 fingerprint. Nothing
// is sent but the TLS handshake.
func fetchServerCert(ctx context.Context, u string) (string, string, error) {
	host := strings.TrimPrefix(u, "https://")
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return "", "", fmt.Errorf("cannot reach %s: %w", u, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", "", fmt.Errorf("%s presents no certificate", u)
	}
	sum := sha256.Sum256(certs[0].Raw)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})), hex.EncodeToString(sum[:]), nil
}

// ensureClientCert makes den's client certificate (ECDSA P-384, as LXD's
// client makes, ten years) when there is none.
func (p *Provider) ensureClientCert() error {
	if _, err := os.Stat(p.certPath()); err == nil {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	host, _ := os.Hostname()
	return selfcert.Write(p.certPath(), p.keyPath(), "den@"+host, x509.ExtKeyUsageClientAuth, nil, nil)
}

// connectHTTPS connects to r with den's client certificate, accepting
// only r's pinned server certificate.
func (p *Provider) connectHTTPS(ctx context.Context, r Remote) (lxdclient.InstanceServer, error) {
	cert, err := os.ReadFile(p.certPath())
	if err != nil {
		return nil, fmt.Errorf("remote %q: den's client certificate: %w (add the remote again with 'den remote add')", r.Name, err)
	}
	key, err := os.ReadFile(p.keyPath())
	if err != nil {
		return nil, fmt.Errorf("remote %q: den's client key: %w", r.Name, err)
	}
	// The client keeps the context for every later request: not ctx.
	c, err := lxdclient.ConnectLXDWithContext(context.Background(), r.Addr, &lxdclient.ConnectionArgs{
		TLSClientCert: string(cert), TLSClientKey: string(key), TLSServerCert: r.ServerCert,
		UserAgent: "den", SkipGetServer: true,
		// Traffic to a remote never goes through a proxy from den's
		// environment: the server's certificate is pinned anyway.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		return nil, fmt.Errorf("remote %q (%s): %w", r.Name, r.Addr, err)
	}
	return c, nil
}

// requiredExtensions are the API extensions den uses on every server
// (LXD 5.0 has them all).
var requiredExtensions = []string{"instances", "image_create_aliases", "network_state", "network_leases", "snapshot_disk_usage", "instance_get_full"}

// server is a connected remote.
type server struct {
	remote    Remote
	c         lxdclient.InstanceServer
	info      *api.Server
	clustered bool
}

// local reports whether the server is this host's (so host folders can be
// mounted into its machines and its bridge is reachable from here).
func (s *server) local() bool { return s.remote.Local() }

// project returns the server's connection in LXD project proj.
func (s *server) project(proj string) lxdclient.InstanceServer {
	if proj == "" {
		return s.c
	}
	return s.c.UseProject(proj)
}

// server connects to remote name once per process and checks it: that it
// answers, trusts den and has the API extensions den needs. x, when
// given, is the den.hcl block that chose the remote: errors then name its
// line.
func (p *Provider) server(ctx context.Context, name string, x *config.LXD) (*server, error) {
	p.mu.Lock()
	s, ok := p.servers[name]
	p.mu.Unlock()
	if ok {
		return s, nil
	}
	fail := func(summary, format string, args ...any) error {
		if x != nil {
			return x.Errorf("remote", summary, format, args...)
		}
		return fmt.Errorf("remote %q: %s", name, fmt.Sprintf(format, args...))
	}
	r, ok, err := p.remote(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fail("Unknown LXD remote", "den has no remote %q: add it with 'den remote add %s https://HOST:8443 --token TOKEN' ('den remote list' shows the known ones).", name, name)
	}
	var c lxdclient.InstanceServer
	if r.Local() {
		c, err = lxdclient.ConnectLXDUnixWithContext(context.Background(), localSocket(), &lxdclient.ConnectionArgs{UserAgent: "den", SkipGetServer: true})
		if err != nil {
			return nil, fail("LXD not reachable", "this host's LXD does not answer on %s: %v. Is it installed and running? (scripts/lxd-setup.sh sets one up; 'lxd waitready' waits for it)", localSocket(), err)
		}
	} else {
		if c, err = p.connectHTTPS(ctx, r); err != nil {
			return nil, fail("LXD remote not reachable", "%v", err)
		}
	}
	info, err := getServer(ctx, c)
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "certificate") && !r.Local():
			return nil, fail("LXD remote's certificate changed", "remote %q (%s) does not present the certificate den pinned when it was added (fingerprint %s): %v. If the server was reinstalled, 'den remote remove %s' and add it again.", name, r.Addr, r.Fingerprint(), err, name)
		case r.Local():
			return nil, fail("LXD not reachable", "this host's LXD does not answer on %s: %v. Is it installed and running? (scripts/lxd-setup.sh sets one up)", localSocket(), err)
		}
		return nil, fail("LXD remote not reachable", "remote %q (%s) does not answer: %v", name, r.Addr, err)
	}
	if info.Auth != "trusted" {
		if r.Local() {
			return nil, fail("LXD refuses den", "this host's LXD does not trust den: run den as root or as a member of group lxd.")
		}
		return nil, fail("LXD remote does not trust den", "remote %q (%s) does not trust den's client certificate %s: make a token with 'lxc config trust add' on the server, then 'den remote remove %s' and 'den remote add %s %s --token TOKEN'.", name, r.Addr, p.certPath(), name, name, r.Addr)
	}
	var missing []string
	for _, ext := range requiredExtensions {
		if !slices.Contains(info.APIExtensions, ext) {
			missing = append(missing, ext)
		}
	}
	if len(missing) > 0 {
		return nil, fail("LXD server too old", "remote %q runs LXD %s, which lacks the API extensions %s that den needs: den needs LXD 5.0 or later.", name, info.Environment.ServerVersion, strings.Join(missing, ", "))
	}
	s = &server{remote: r, c: c, info: info, clustered: info.Environment.ServerClustered}
	p.mu.Lock()
	if old, ok := p.servers[name]; ok {
		s = old
		c.Disconnect()
	} else {
		p.servers[name] = s
	}
	p.mu.Unlock()
	return s, nil
}

// getServer asks the server about itself, giving up after 20 s or when ctx
// ends (a server that takes the connection but never answers).
func getServer(ctx context.Context, c lxdclient.InstanceServer) (*api.Server, error) {
	type result struct {
		info *api.Server
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		info, _, err := c.GetServer()
		ch <- result{info, err}
	}()
	t := time.NewTimer(20 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.info, r.err
	case <-t.C:
		return nil, errors.New("no answer within 20 s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
