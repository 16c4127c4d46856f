package main

import (
	"slices"
	"strings"
	"testing"
)

func TestIntersperse(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		{"den box add debian/bookworm f.box --force", "den box add --force debian/bookworm f.box"},
		{"den box build debian/bookworm --output x.box", "den box build --output x.box debian/bookworm"},
		{"den -C /p ssh web -c ls -la", "den -C /p ssh -c ls -la web"},
		{"den ssh web -c 'ls -la'", "den ssh -c 'ls -la' web"},
		{"den ssh -c true", "den ssh -c true"},
		{"den halt web --force --timeout 5s", "den halt --force --timeout 5s web"},
		{"den destroy -f", "den destroy -f"},
		{"den status --json", "den status --json"},
		{"den up -- -x", "den up -- -x"},
		{"den", "den"},
		{"den up -C /p web", "den -C /p up web"},
		{"den box list --chdir=/p --json", "den --chdir=/p box list --json"},
	} {
		in := splitQuoted(tc.in)
		got := strings.Join(intersperse(app, in), " ")
		if got != tc.want {
			t.Errorf("intersperse(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// splitQuoted splits on spaces, keeping '...' together (quotes kept).
func splitQuoted(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if n := len(out); n > 0 && strings.Count(out[n-1], "'") == 1 {
			out[n-1] += " " + f
			continue
		}
		out = append(out, f)
	}
	return slices.Clip(out)
}
