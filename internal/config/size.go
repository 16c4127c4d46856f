package config

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// sizeRE matches a lower-cased size: a number, an optional fraction, then
// an optional unit (k, ki, kb, kib … t, ti, tb, tib) or b for bytes.
var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(?:([kmgt])i?b?|b)?$`)

var sizeShift = map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}

// ParseSize parses a size such as "512M", "1G", "1.5GiB", "512MB" or "2048"
// (plain bytes) into bytes. The units K, M, G and T, with or without "i", "B"
// or "iB" and in any case, are powers of 1024. Fractions are rounded down to
// whole bytes. Surrounding spaces and a space before the unit are allowed.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf(`%q is not a size: use bytes or a number with K, M, G or T (powers of 1024), e.g. "512M", "1.5GiB"`, s)
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("%q is not a size: cannot read the number %q", s, m[1])
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), sizeShift[m[2]])))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n.Int64(), nil
}

// formatSize writes n bytes in the largest unit that divides it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
