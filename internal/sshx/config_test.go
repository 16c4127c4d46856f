package sshx

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func goldenEntry() ConfigEntry {
	return ConfigEntry{
		Host:           "den-web",
		HostName:       "10.0.3.5",
		User:           "den",
		IdentityFile:   "/home/me/my project 50%/.den/web/id_ed25519",
		KnownHostsFile: "/home/me/my project 50%/.den/web/known_hosts",
	}
}

func TestWriteConfigGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteConfig(&b, goldenEntry()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "ssh_config.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("WriteConfig output differs from %s:\ngot:\n%s\nwant:\n%s", golden, b.String(), want)
	}
}

func TestWriteConfigRefuses(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*ConfigEntry)
		wantErr string
	}{
		{"LF in Host", func(e *ConfigEntry) { e.Host = "den-web\n  ProxyCommand evil" }, `Host "den-web\n  ProxyCommand evil" contains a line break or NUL`},
		{"CR in HostName", func(e *ConfigEntry) { e.HostName = "10.0.3.5\rProxyCommand evil" }, `HostName "10.0.3.5\rProxyCommand evil" contains a line break or NUL`},
		{"LF in User", func(e *ConfigEntry) { e.User = "den\nProxyCommand evil" }, `User "den\nProxyCommand evil" contains a line break or NUL`},
		{"LF in IdentityFile", func(e *ConfigEntry) { e.IdentityFile = "/k\nProxyCommand evil" }, `IdentityFile "/k\nProxyCommand evil" contains a line break or NUL`},
		{"CR in KnownHostsFile", func(e *ConfigEntry) { e.KnownHostsFile = "/k\r\nProxyCommand evil" }, `UserKnownHostsFile "/k\r\nProxyCommand evil" contains a line break or NUL`},
		{"NUL in HostKeyAlias", func(e *ConfigEntry) { e.HostKeyAlias = "den\x00web" }, `HostKeyAlias "den\x00web" contains a line break or NUL`},
		{"pattern in Host", func(e *ConfigEntry) { e.Host = "den-*" }, `Host "den-*" may hold only letters, digits`},
		{"space in User", func(e *ConfigEntry) { e.User = "den ProxyCommand" }, `User "den ProxyCommand" may hold only letters, digits`},
		{"option-like Host", func(e *ConfigEntry) { e.Host = "-v" }, `Host "-v" must not start with '-'`},
		{"empty User", func(e *ConfigEntry) { e.User = "" }, `User is empty`},
		{"space in HostName", func(e *ConfigEntry) { e.HostName = "10.0.3.5 evil" }, `HostName "10.0.3.5 evil" must be a non-empty address`},
		{"relative IdentityFile", func(e *ConfigEntry) { e.IdentityFile = ".den/web/id_ed25519" }, `IdentityFile ".den/web/id_ed25519" must be an absolute path`},
		{"quote in KnownHostsFile", func(e *ConfigEntry) { e.KnownHostsFile = `/a"b/known_hosts` }, `UserKnownHostsFile "/a\"b/known_hosts" contains a quote or backslash`},
		{"port out of range", func(e *ConfigEntry) { e.Port = 70000 }, `port 70000 is out of range`},
		{"LF in ProxyCommand", func(e *ConfigEntry) { e.ProxyCommand = []string{"/bin/den", "x\nHost *"} }, `ProxyCommand argument "x\nHost *" contains a line break or NUL`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := goldenEntry()
			tc.edit(&e)
			var b bytes.Buffer
			err := WriteConfig(&b, e)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteConfig error = %v, want it to contain %q", err, tc.wantErr)
			}
			if b.Len() != 0 {
				t.Errorf("WriteConfig wrote %q before refusing", b.String())
			}
		})
	}
}

// TestWriteConfigProxyCommand: each word of ProxyCommand is single-quoted
// for the shell ssh runs it with, quotes and %-tokens escaped.
func TestWriteConfigProxyCommand(t *testing.T) {
	e := goldenEntry()
	e.ProxyCommand = []string{"/opt/den", "-C", "/home/me/it's 50%", "__ssh-proxy", "web"}
	var b bytes.Buffer
	if err := WriteConfig(&b, e); err != nil {
		t.Fatal(err)
	}
	want := `  ProxyCommand '/opt/den' '-C' '/home/me/it'\''s 50%%' '__ssh-proxy' 'web'` + "\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("WriteConfig wrote:\n%s\nwant the line:\n%s", b.String(), want)
	}
}
