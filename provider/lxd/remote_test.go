package lxd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canonical/lxd/shared/api"

	"github.com/den-dev/den/internal/config"
)

// fakeLXD is an HTTPS server that answers GET /1.0 as an LXD server
// would (auth and API extensions as set) and refuses every certificate
// request: enough to check den's errors about a remote.
type fakeLXD struct {
	*httptest.Server
	auth       string
	extensions []string
	posts      int
}

func newFakeLXD(t *testing.T, auth string, extensions []string) *fakeLXD {
	f := &fakeLXD{auth: auth, extensions: extensions}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/1.0":
			json.NewEncoder(w).Encode(map[string]any{"type": "sync", "status": "Success", "status_code": 200, "metadata": api.Server{
				ServerUntrusted: api.ServerUntrusted{
					APIExtensions: f.extensions,
					Auth:          f.auth,
					APIVersion:    "1.0",
				},
				Environment: api.ServerEnvironment{ServerVersion: "4.0.9"},
			}})
		case r.Method == http.MethodPost && r.URL.Path == "/1.0/certificates":
			f.posts++
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": "not authorized", "error_code": 403})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": "not found", "error_code": 404})
		}
	}))
	f.Server.StartTLS()
	t.Cleanup(f.Close)
	return f
}

// certPEM is the fake server's certificate and its fingerprint.
func (f *fakeLXD) certPEM() (string, string) {
	der := f.Certificate().Raw
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), hex.EncodeToString(sum[:])
}

// writeRemote records remote name at addr with the pinned certificate.
func writeRemote(t *testing.T, p *Provider, name, addr, cert string) {
	t.Helper()
	if err := p.ensureClientCert(); err != nil {
		t.Fatal(err)
	}
	err := p.editRemotes(context.Background(), func(f *remotesFile) error {
		f.Remotes[name] = Remote{Addr: addr, ServerCert: cert}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// lxdBlock loads a den.hcl whose lxd block names remote, so errors can
// name its line.
func lxdBlock(t *testing.T, remote string) *config.LXD {
	t.Helper()
	dir := t.TempDir()
	src := "box = \"b\"\nprovider = \"lxd\"\n\nlxd {\n  remote = \"" + remote + "\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := config.Load(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return p.Machines[0].LXD
}

// wantLocated checks that err is a den.hcl diagnostic at the remote line
// whose text holds every part of want.
func wantLocated(t *testing.T, err error, want ...string) {
	t.Helper()
	var de *config.DiagError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a den.hcl diagnostic", err, err)
	}
	var b bytes.Buffer
	config.WriteDiagnostics(&b, de.Files, de.Diags, false)
	out := b.String()
	if !strings.Contains(out, "den.hcl:5:") || !strings.Contains(out, `remote = "`) {
		t.Errorf("the error does not point at the remote line:\n%s", out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the error lacks %q:\n%s", w, out)
		}
	}
}

func TestRemoteErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("unknown remote", func(t *testing.T) {
		p := New(t.TempDir())
		_, err := p.server(ctx, "nowhere", lxdBlock(t, "nowhere"))
		wantLocated(t, err, `den has no remote "nowhere"`, "den remote add nowhere")
	})

	t.Run("unreachable remote", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := "https://" + l.Addr().String()
		l.Close() // nothing answers there now
		p := New(t.TempDir())
		f := newFakeLXD(t, "trusted", requiredExtensions)
		cert, _ := f.certPEM()
		writeRemote(t, p, "gone", addr, cert)
		_, err = p.server(ctx, "gone", lxdBlock(t, "gone"))
		wantLocated(t, err, `remote "gone"`, "does not answer", addr)
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		p := New(t.TempDir())
		f := newFakeLXD(t, "untrusted", requiredExtensions)
		cert, _ := f.certPEM()
		writeRemote(t, p, "ci", f.URL, cert)
		_, err := p.server(ctx, "ci", lxdBlock(t, "ci"))
		wantLocated(t, err, "does not trust den's client certificate", "--token")
	})

	t.Run("server certificate changed", func(t *testing.T) {
		p := New(t.TempDir())
		f := newFakeLXD(t, "trusted", requiredExtensions)
		// Pinned: another certificate (den's own client one will do).
		if err := p.ensureClientCert(); err != nil {
			t.Fatal(err)
		}
		cert, err := os.ReadFile(p.certPath())
		if err != nil {
			t.Fatal(err)
		}
		writeRemote(t, p, "ci", f.URL, string(cert))
		_, err = p.server(ctx, "ci", lxdBlock(t, "ci"))
		wantLocated(t, err, "certificate den pinned")
	})

	t.Run("missing API extension", func(t *testing.T) {
		p := New(t.TempDir())
		f := newFakeLXD(t, "trusted", []string{"instances"})
		cert, _ := f.certPEM()
		writeRemote(t, p, "old", f.URL, cert)
		_, err := p.server(ctx, "old", lxdBlock(t, "old"))
		wantLocated(t, err, "LXD 4.0.9", "image_create_aliases", "LXD 5.0 or later")
	})

	t.Run("wrong token", func(t *testing.T) {
		p := New(t.TempDir())
		f := newFakeLXD(t, "untrusted", requiredExtensions)
		_, fp := f.certPEM()
		tok := (&api.CertificateAddToken{ClientName: "x", Fingerprint: fp, Secret: "wrong", Addresses: []string{f.Listener.Addr().String()}}).String()
		_, err := p.AddRemote(ctx, "ci", f.URL, AddOptions{Token: tok})
		if err == nil || !strings.Contains(err.Error(), "refused the token") || f.posts != 1 {
			t.Errorf("AddRemote with a token the server refuses = %v (posts %d)", err, f.posts)
		}
		if rs, _ := p.Remotes(); len(rs) != 1 {
			t.Errorf("a refused remote was recorded: %+v", rs)
		}
	})

	t.Run("token from another server", func(t *testing.T) {
		p := New(t.TempDir())
		f := newFakeLXD(t, "untrusted", requiredExtensions)
		fp := strings.Repeat("ab", 32) // another server's certificate
		tok := (&api.CertificateAddToken{ClientName: "x", Fingerprint: fp, Secret: "s"}).String()
		_, err := p.AddRemote(ctx, "ci", f.URL, AddOptions{Token: tok})
		if err == nil || !strings.Contains(err.Error(), "the token was made by the server with certificate") || f.posts != 0 {
			t.Errorf("AddRemote to a server the token is not for = %v (posts %d: den must not send the token)", err, f.posts)
		}
	})

	t.Run("not a token", func(t *testing.T) {
		_, err := New(t.TempDir()).AddRemote(ctx, "ci", "https://127.0.0.1:1", AddOptions{Token: "hello"})
		if err == nil || !strings.Contains(err.Error(), "not an LXD trust token") {
			t.Errorf("AddRemote with garbage = %v", err)
		}
	})

	t.Run("password without a checked certificate", func(t *testing.T) {
		f := newFakeLXD(t, "untrusted", requiredExtensions)
		_, fp := f.certPEM()
		_, err := New(t.TempDir()).AddRemote(ctx, "ci", f.URL, AddOptions{Password: "pw"})
		if err == nil || !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), "--accept-certificate") || f.posts != 0 {
			t.Errorf("AddRemote --password without --accept-certificate = %v", err)
		}
	})
}

func TestRemoteURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://ci.example.com":      "https://ci.example.com:8443",
		"ci.example.com:9443":         "https://ci.example.com:9443",
		"https://[::1]":               "https://[::1]:8443",
		"https://10.0.0.5:8443/":      "https://10.0.0.5:8443",
		"http://ci.example.com":       "",
		"https://u:p@ci.example.com":  "",
		"https://ci.example.com/path": "",
	} {
		got, err := remoteURL(in)
		if want == "" {
			if err == nil {
				t.Errorf("remoteURL(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("remoteURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestRemoveRemoteWithMachines: a remote that still holds machines is
// not forgotten (den could no longer reach them).
func TestRemoveRemoteWithMachines(t *testing.T) {
	p := New(t.TempDir())
	f := newFakeLXD(t, "trusted", requiredExtensions)
	cert, _ := f.certPEM()
	writeRemote(t, p, "ci", f.URL, cert)
	if err := p.place("den-app-web-abc123", placement{Remote: "ci"}); err != nil {
		t.Fatal(err)
	}
	err := p.RemoveRemote(context.Background(), "ci")
	if err == nil || !strings.Contains(err.Error(), "den-app-web-abc123") {
		t.Fatalf("RemoveRemote of a remote with a machine = %v", err)
	}
	if err := p.unplace("den-app-web-abc123"); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveRemote(context.Background(), "ci"); err != nil {
		t.Fatalf("RemoveRemote of an empty remote: %v", err)
	}
	if rs, _ := p.Remotes(); len(rs) != 1 {
		t.Errorf("remotes after remove: %+v", rs)
	}
}
