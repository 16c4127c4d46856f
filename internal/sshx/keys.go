// Package sshx holds den's SSH side: per-machine keys, a client that pins the
// machine's host key, command runs, the interactive shell and ssh-config output.
package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/den-dev/den/internal/fsutil"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// GenerateKey makes a fresh ed25519 login key. privPEM is the private key in
// OpenSSH format (what ssh -i and LoadSigner read); authorizedLine is the
// public key as one authorized_keys line, "ssh-ed25519 AAAA… comment\n".
func GenerateKey(comment string) (priv ed25519.PrivateKey, privPEM []byte, authorizedLine []byte, err error) {
	if strings.ContainsAny(comment, "\r\n\x00") {
		return nil, nil, nil, fmt.Errorf("key comment %q contains a line break or NUL; use a single-line comment", comment)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	privPEM, pubLine, err := marshalPair(pub, priv, comment)
	if err != nil {
		return nil, nil, nil, err
	}
	return priv, privPEM, pubLine, nil
}

// GenerateHostKey makes a fresh ed25519 host key for a guest's
// /etc/ssh/ssh_host_ed25519_key (privPEM, OpenSSH format) and
// /etc/ssh/ssh_host_ed25519_key.pub (pubLine, "ssh-ed25519 AAAA…\n"). pubLine
// is also what den pins: LoadHostKey reads it back.
func GenerateHostKey() (privPEM []byte, pubLine []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating ed25519 host key: %w", err)
	}
	return marshalPair(pub, priv, "")
}

func marshalPair(pub ed25519.PublicKey, priv ed25519.PrivateKey, comment string) ([]byte, []byte, error) {
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding public key: %w", err)
	}
	line := ssh.MarshalAuthorizedKey(sshPub) // ends in "\n"
	if comment != "" {
		line = append(line[:len(line)-1], " "+comment+"\n"...)
	}
	return pem.EncodeToMemory(block), line, nil
}

// LoadSigner reads an unencrypted private key file. Like OpenSSH ("UNPROTECTED
// PRIVATE KEY FILE"), it refuses a file that group or others may access.
func LoadSigner(path string) (ssh.Signer, error) {
	f, err := fsutil.OpenRegular(path, os.O_RDONLY, 0)
	if errors.Is(err, fsutil.ErrNotRegular) {
		return nil, fmt.Errorf("private key %q is not a regular file (%w)", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("private key %q has permissions %04o, which let others read it; run 'chmod 600 %q'", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parsing private key %q: %w", path, err)
	}
	return signer, nil
}

// LoadHostKey reads a pinned host key: a file whose first line is a public key
// in authorized_keys format, as GenerateHostKey's pubLine.
func LoadHostKey(path string) (ssh.PublicKey, error) {
	data, err := fsutil.ReadRegular(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("reading pinned host key: %w", err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, fmt.Errorf("parsing pinned host key %q: %w", path, err)
	}
	return key, nil
}

// KnownHostsLine returns a known_hosts line, ending in "\n", that lists key
// for alias and, when addr is not empty, for addr ("10.0.3.5:22"; a port
// other than 22 is written OpenSSH's "[host]:port" way). With HostKeyAlias
// set, OpenSSH looks up the alias verbatim, so the alias entry is the one
// ssh -F uses; the address entry serves a plain "ssh 10.0.3.5".
func KnownHostsLine(alias string, addr string, key ssh.PublicKey, more ...string) string {
	hosts := append([]string{alias}, more...)
	if addr != "" {
		hosts = append(hosts, addr)
	}
	return knownhosts.Line(hosts, key) + "\n"
}
