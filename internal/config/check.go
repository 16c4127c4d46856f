package config

import (
	"errors"
	"slices"
	"strings"
)

// The checks below are the decoder's own, for programs that write den.hcl
// (den init --from Vagrantfile): they leave out what Load would refuse.

// Quote writes s as an HCL string literal, with "${" and "%{" escaped.
func Quote(s string) string { return hclQuote(s) }

// CheckGuestPath returns why a synced folder cannot be mounted at guest,
// or nil when it can.
func CheckGuestPath(guest string) error {
	if summary, detail := checkGuest(guest, false); summary != "" {
		return errors.New(strings.TrimSuffix(detail, "."))
	}
	return nil
}

// OwnedLXCKey reports whether den sets the LXC key itself (so lxc { config }
// may not), and what to use instead.
func OwnedLXCKey(key string) (use string, ok bool) { return owned(ownedKeys, key) }

// ownedKey is a key den sets itself (it and every key below it), with
// what to use instead.
type ownedKey struct{ key, use string }

// owned finds key in list: what to use instead, and whether den owns it.
func owned(list []ownedKey, key string) (use string, ok bool) {
	i := slices.IndexFunc(list, func(o ownedKey) bool {
		return key == o.key || strings.HasPrefix(key, o.key+".")
	})
	if i < 0 {
		return "", false
	}
	return list[i].use, true
}

// ValidLXCKey reports whether key has the form of an LXC key ("lxc.a.b").
func ValidLXCKey(key string) bool { return lxcKeyRE.MatchString(key) }

// ValidHostname reports whether h is a hostname den accepts.
func ValidHostname(h string) bool { return validHostname(h) }

// ValidMachineName reports whether name can name a machine block.
func ValidMachineName(name string) bool { return machineNameRE.MatchString(name) }

// ValidProvisionerName reports whether name can name a provisioner.
func ValidProvisionerName(name string) bool { return provisionNameRE.MatchString(name) }

// ValidEnvName reports whether name can name an environment variable in env.
func ValidEnvName(name string) bool { return envNameRE.MatchString(name) }
