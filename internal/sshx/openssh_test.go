package sshx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/den-dev/den/internal/fsutil"
	"github.com/den-dev/den/internal/testenv"
	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// requireOpenSSH skips when OpenSSH's sshd and ssh or root are missing,
// except under CI=true, where the test must run.
func requireOpenSSH(t *testing.T) string {
	t.Helper()
	var missing []string
	if _, err := os.Stat(sshdPath); err != nil {
		missing = append(missing, sshdPath+" (apt-get install openssh-server)")
	}
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		missing = append(missing, "ssh (apt-get install openssh-client)")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root (sshd needs it for privilege separation)")
	}
	if len(missing) > 0 {
		msg := "needs " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true does not allow skipping")
		}
		testenv.Skip(t, msg)
	}
	return sshPath
}

// TestOpenSSH runs the real sshd with den's generated keys and checks den's
// client and the system ssh against it, the latter through WriteConfig's
// output and a known_hosts file from KnownHostsLine. sshd also offers an
// ECDSA host key, as a box that kept one would.
func TestOpenSSH(t *testing.T) {
	sshPath := requireOpenSSH(t)
	dir := t.TempDir()
	// Where den keeps the client side: a space and a '%' test the quoting
	// and token escaping of WriteConfig against the real ssh.
	denDir := filepath.Join(dir, "my project 100%", ".den", "web")
	if err := os.MkdirAll(denDir, 0o700); err != nil {
		t.Fatal(err)
	}

	hostPEM, hostPub, err := GenerateHostKey()
	if err != nil {
		t.Fatal(err)
	}
	_, userPEM, authLine, err := GenerateKey("den web")
	if err != nil {
		t.Fatal(err)
	}
	ecdsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaBlock, err := ssh.MarshalPrivateKey(ecdsaKey, "")
	if err != nil {
		t.Fatal(err)
	}
	otherHostSigner := ed25519Signer(t)
	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(dir, "ssh_host_ed25519_key"), hostPEM},
		{filepath.Join(dir, "ssh_host_ecdsa_key"), pem.EncodeToMemory(ecdsaBlock)},
		{filepath.Join(dir, "authorized_keys"), authLine},
		{filepath.Join(denDir, "id_ed25519"), userPEM},
		{filepath.Join(denDir, "host_key.pub"), hostPub},
	}
	for _, f := range files {
		if err := fsutil.WriteFileAtomic(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	addr := reservePort(t)
	_, portText, _ := strings.Cut(addr, ":")
	port, _ := strconv.Atoi(portText)
	sshdConfig := fmt.Sprintf(`ListenAddress %s
HostKey %s/ssh_host_ecdsa_key
HostKey %s/ssh_host_ed25519_key
AuthorizedKeysFile %s/authorized_keys
PidFile none
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
`, addr, dir, dir, dir)
	configPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(configPath, []byte(sshdConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd's privilege separation directory; the Debian service makes it at boot.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "sshd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	sshd := exec.Command(sshdPath, "-D", "-e", "-f", configPath)
	sshd.Stdout, sshd.Stderr = logFile, logFile
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sshd.Process.Kill()
		sshd.Wait()
	})
	sshdLog := func() string {
		data, _ := os.ReadFile(logPath)
		return string(data)
	}

	signer, err := LoadSigner(filepath.Join(denDir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := LoadHostKey(filepath.Join(denDir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Addr: addr, User: "root", Signer: signer, HostKey: pinned, PinFile: filepath.Join(denDir, "host_key.pub")}

	t.Run("den client with the pinned key", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := WaitReady(ctx, target, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("WaitReady: %v\nsshd log:\n%s", err, sshdLog())
		}
		defer c.Close()
		var stdout, stderr bytes.Buffer
		status, err := Run(ctx, c, "echo hi; echo oops >&2; exit 3", nil, &stdout, &stderr)
		if err != nil || status != 3 || stdout.String() != "hi\n" || stderr.String() != "oops\n" {
			t.Fatalf("Run = %d, %v, stdout %q, stderr %q; want 3, nil, \"hi\\n\", \"oops\\n\"", status, err, stdout.String(), stderr.String())
		}
		status, err = Run(ctx, c, "kill -9 $$", nil, nil, nil)
		if err != nil || status != 128+9 {
			t.Fatalf("Run(killed shell) = %d, %v; want 137, nil", status, err)
		}
	})

	t.Run("den client with another pinned key", func(t *testing.T) {
		wrong := target
		wrong.HostKey = otherHostSigner.PublicKey()
		_, err := Dial(context.Background(), wrong)
		if !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("Dial error = %v, want ErrHostKeyMismatch", err)
		}
	})

	writeClientFiles := func(t *testing.T, knownHostsLine string) string {
		t.Helper()
		known := filepath.Join(denDir, "known_hosts")
		if err := fsutil.WriteFileAtomic(known, []byte(knownHostsLine), 0o600); err != nil {
			t.Fatal(err)
		}
		var cfg bytes.Buffer
		err := WriteConfig(&cfg, ConfigEntry{
			Host: "den-web", HostName: "127.0.0.1", Port: port, User: "root",
			IdentityFile: filepath.Join(denDir, "id_ed25519"), KnownHostsFile: known,
		})
		if err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(denDir, "ssh_config")
		if err := fsutil.WriteFileAtomic(cfgPath, cfg.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfgPath
	}
	runSSH := func(t *testing.T, cfgPath string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, sshPath, "-F", cfgPath, "-o", "BatchMode=yes", "den-web", "true").CombinedOutput()
		return string(out), err
	}

	// With HostKeyAlias set, ssh looks the key up under the alias alone.
	for _, tc := range []struct{ name, addr string }{{"alias and address", addr}, {"alias only", ""}} {
		t.Run("system ssh with known_hosts for "+tc.name, func(t *testing.T) {
			cfgPath := writeClientFiles(t, KnownHostsLine("den-web", tc.addr, pinned))
			if out, err := runSSH(t, cfgPath); err != nil {
				t.Fatalf("ssh -F %q den-web true: %v\n%s\nsshd log:\n%s", cfgPath, err, out, sshdLog())
			}
		})
	}

	t.Run("system ssh refuses another key", func(t *testing.T) {
		cfgPath := writeClientFiles(t, KnownHostsLine("den-web", addr, otherHostSigner.PublicKey()))
		out, err := runSSH(t, cfgPath)
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 255 {
			t.Fatalf("ssh with a wrong known_hosts: %v, want exit status 255\n%s", err, out)
		}
		if !strings.Contains(out, "Host key verification failed") {
			t.Errorf("ssh output = %q, want \"Host key verification failed\"", out)
		}
	})
}
