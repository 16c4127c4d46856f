package sshx

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// ConfigEntry is one Host block of an ssh_config file.
type ConfigEntry struct {
	Host           string   // Alias used on the ssh command line, e.g. "den-web".
	HostName       string   // Address, e.g. "10.0.3.5".
	User           string   // Login user.
	IdentityFile   string   // Absolute path of the private key.
	KnownHostsFile string   // Absolute path of the known_hosts file holding KnownHostsLine(HostKeyAlias, …).
	HostKeyAlias   string   // Name looked up in KnownHostsFile; empty means Host.
	Port           int      // 0 means 22.
	ForwardAgent   bool     // ForwardAgent yes
	SendEnv        []string // environment variable names passed on (SendEnv)
	// ProxyCommand, when set, is the command (argv) OpenSSH runs to reach
	// the machine instead of connecting to HostName.
	ProxyCommand []string
}

// WriteConfig writes e as an ssh_config Host block that checks the pinned
// host key strictly and logs in with e.IdentityFile only, for ssh -F, scp,
// rsync and the like. Values are validated first, and nothing is written
// when one is refused: a line break, NUL or quote would let a value add
// options of its own (config injection), and names are limited to letters,
// digits, '.', '_' and '-'. Paths must be absolute; they are quoted and their
// '%' doubled, since ssh expands %-tokens in them.
func WriteConfig(w io.Writer, e ConfigEntry) error {
	if e.HostKeyAlias == "" {
		e.HostKeyAlias = e.Host
	}
	if e.Port == 0 {
		e.Port = 22
	}
	fields := []struct{ name, value string }{
		{"Host", e.Host}, {"HostName", e.HostName}, {"User", e.User},
		{"IdentityFile", e.IdentityFile}, {"UserKnownHostsFile", e.KnownHostsFile},
		{"HostKeyAlias", e.HostKeyAlias},
	}
	for _, f := range fields {
		if strings.ContainsAny(f.value, "\r\n\x00") {
			return fmt.Errorf("ssh-config: %s %q contains a line break or NUL, which would inject ssh options; refusing to write it", f.name, f.value)
		}
	}
	for _, f := range []struct{ name, value string }{{"Host", e.Host}, {"User", e.User}, {"HostKeyAlias", e.HostKeyAlias}} {
		if err := checkName(f.name, f.value); err != nil {
			return err
		}
	}
	if e.HostName == "" || strings.ContainsAny(e.HostName, " \t\"'\\#") {
		return fmt.Errorf("ssh-config: HostName %q must be a non-empty address without spaces, quotes, backslashes or '#'", e.HostName)
	}
	for _, f := range fields[3:5] {
		if !filepath.IsAbs(f.value) {
			return fmt.Errorf("ssh-config: %s %q must be an absolute path", f.name, f.value)
		}
		if strings.ContainsAny(f.value, "\"\\") {
			return fmt.Errorf("ssh-config: %s %q contains a quote or backslash, which ssh_config cannot hold; move the project to a path without them", f.name, f.value)
		}
	}
	for _, n := range e.SendEnv {
		if err := checkName("SendEnv", n); err != nil || strings.ContainsAny(n, ".-") {
			return fmt.Errorf("ssh-config: SendEnv %q is not an environment variable name", n)
		}
	}
	if e.Port < 1 || e.Port > 65535 {
		return fmt.Errorf("ssh-config: port %d is out of range 1-65535", e.Port)
	}
	for _, a := range e.ProxyCommand {
		if strings.ContainsAny(a, "\r\n\x00") {
			return fmt.Errorf("ssh-config: ProxyCommand argument %q contains a line break or NUL, which would inject ssh options; refusing to write it", a)
		}
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "Host %s\n", e.Host)
	fmt.Fprintf(&b, "  HostName %s\n", escapeTokens(e.HostName))
	fmt.Fprintf(&b, "  Port %d\n", e.Port)
	fmt.Fprintf(&b, "  User %s\n", e.User)
	fmt.Fprintf(&b, "  IdentityFile \"%s\"\n", escapeTokens(e.IdentityFile))
	fmt.Fprintf(&b, "  IdentitiesOnly yes\n")
	fmt.Fprintf(&b, "  UserKnownHostsFile \"%s\"\n", escapeTokens(e.KnownHostsFile))
	fmt.Fprintf(&b, "  HostKeyAlias %s\n", e.HostKeyAlias)
	if len(e.ProxyCommand) > 0 {
		// ssh runs it with the user's shell: each word single-quoted.
		q := make([]string, len(e.ProxyCommand))
		for i, a := range e.ProxyCommand {
			q[i] = "'" + strings.ReplaceAll(escapeTokens(a), "'", `'\''`) + "'"
		}
		fmt.Fprintf(&b, "  ProxyCommand %s\n", strings.Join(q, " "))
	}
	fmt.Fprintf(&b, "  StrictHostKeyChecking yes\n")
	fmt.Fprintf(&b, "  PasswordAuthentication no\n")
	fmt.Fprintf(&b, "  LogLevel ERROR\n")
	if e.ForwardAgent {
		fmt.Fprintf(&b, "  ForwardAgent yes\n")
	}
	if len(e.SendEnv) > 0 {
		fmt.Fprintf(&b, "  SendEnv %s\n", strings.Join(e.SendEnv, " "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// checkName allows what a host alias or user name needs and nothing that
// ssh_config would read as a pattern, quote, comment or %-token.
func checkName(field, value string) error {
	if value == "" {
		return fmt.Errorf("ssh-config: %s is empty", field)
	}
	if value[0] == '-' {
		return fmt.Errorf("ssh-config: %s %q must not start with '-'", field, value)
	}
	for _, r := range value {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("ssh-config: %s %q may hold only letters, digits, '.', '_' and '-'", field, value)
		}
	}
	return nil
}

// escapeTokens doubles '%' so ssh does not expand it as a token.
func escapeTokens(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}
