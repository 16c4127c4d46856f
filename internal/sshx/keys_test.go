package sshx

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/fsutil"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestGenerateKey(t *testing.T) {
	priv, privPEM, line, err := GenerateKey("den web")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatalf("private key does not parse: %v", err)
	}
	if !bytes.HasPrefix(privPEM, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n")) {
		t.Errorf("private key is not in OpenSSH format:\n%s", privPEM)
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatalf("authorized line %q does not parse: %v", line, err)
	}
	if comment != "den web" || len(rest) != 0 || !bytes.HasSuffix(line, []byte(" den web\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Errorf("authorized line = %q, want one line ending in \" den web\\n\"", line)
	}
	if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
		t.Error("authorized line and private key do not match")
	}
	if pub.Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type = %s, want ssh-ed25519", pub.Type())
	}
	fromPriv, err := ssh.NewSignerFromKey(priv)
	if err != nil || !bytes.Equal(fromPriv.PublicKey().Marshal(), pub.Marshal()) {
		t.Error("returned private key does not match the authorized line")
	}

	if _, _, _, err := GenerateKey("den\nweb"); err == nil {
		t.Error("GenerateKey accepted a comment with a line break")
	}
}

func TestGenerateHostKey(t *testing.T) {
	privPEM, pubLine, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatalf("host key does not parse: %v", err)
	}
	path := filepath.Join(t.TempDir(), "host_key.pub")
	if err := fsutil.WriteFileAtomic(path, pubLine, 0o644); err != nil {
		t.Fatal(err)
	}
	pinned, err := LoadHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pinned.Marshal(), signer.PublicKey().Marshal()) {
		t.Error("LoadHostKey(pubLine) differs from the private host key's public key")
	}

	if err := os.WriteFile(path, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHostKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadHostKey(garbage) error = %v, want one naming the file", err)
	}
}

func TestLoadSigner(t *testing.T) {
	_, privPEM, line, err := GenerateKey("den test")
	if err != nil {
		t.Fatal(err)
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		mode    os.FileMode
		wantErr string
	}{
		{name: "0600", mode: 0o600},
		{name: "0400", mode: 0o400},
		{name: "0644 refused", mode: 0o644, wantErr: "has permissions 0644, which let others read it; run 'chmod 600 "},
		{name: "0640 refused", mode: 0o640, wantErr: "has permissions 0640"},
		{name: "0601 refused", mode: 0o601, wantErr: "has permissions 0601"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "id_"+tc.name)
			if err := fsutil.WriteFileAtomic(path, privPEM, tc.mode); err != nil {
				t.Fatal(err)
			}
			signer, err := LoadSigner(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("LoadSigner error = %v, want it to name the file and contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(signer.PublicKey().Marshal(), want.Marshal()) {
				t.Error("loaded key differs from the generated one")
			}
		})
	}
	if _, err := LoadSigner(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadSigner of a missing file succeeded")
	}
}

func TestKnownHostsLine(t *testing.T) {
	host := ed25519Signer(t)
	other := ed25519Signer(t)
	keyText := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(host.PublicKey())), "\n")
	tests := []struct {
		name      string
		alias     string
		addr      string
		want      string
		checkHost string // a host:port the resulting file must vouch for.
	}{
		{name: "alias only", alias: "den-web", want: "den-web " + keyText + "\n", checkHost: "den-web:22"},
		{name: "port 22", alias: "den-web", addr: "10.0.3.5:22", want: "den-web,10.0.3.5 " + keyText + "\n", checkHost: "10.0.3.5:22"},
		{name: "other port", alias: "den-web", addr: "127.0.0.1:2222", want: "den-web,[127.0.0.1]:2222 " + keyText + "\n", checkHost: "127.0.0.1:2222"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := KnownHostsLine(tc.alias, tc.addr, host.PublicKey())
			if got != tc.want {
				t.Fatalf("KnownHostsLine = %q, want %q", got, tc.want)
			}
			path := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			cb, err := knownhosts.New(path)
			if err != nil {
				t.Fatal(err)
			}
			remote := &net.TCPAddr{IP: net.IPv4(10, 0, 3, 5), Port: 22}
			if err := cb(tc.checkHost, remote, host.PublicKey()); err != nil {
				t.Errorf("known_hosts refuses the pinned key for %s: %v", tc.checkHost, err)
			}
			if err := cb(tc.checkHost, remote, other.PublicKey()); err == nil {
				t.Errorf("known_hosts accepts another key for %s", tc.checkHost)
			}
		})
	}
}

func TestLoadKeysRefuseSymlinks(t *testing.T) {
	dir := t.TempDir()
	_, privPEM, _, err := GenerateKey("x")
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(dir, "real")
	if err := os.WriteFile(real, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "id_ed25519")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(link); err == nil {
		t.Error("LoadSigner followed a symlink")
	}
	if _, err := LoadHostKey(link); err == nil {
		t.Error("LoadHostKey followed a symlink")
	}
}
