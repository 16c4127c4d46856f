package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
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

// TestSplitDashDash: the arguments before and after "--", with or without
// a machine name before it.
func TestSplitDashDash(t *testing.T) {
	for _, tc := range []struct{ in, before, after string }{
		{"den t -- ls -la", "", "ls -la"},
		{"den t web -- ls -la", "web", "ls -la"},
		{"den t --root web -- ls", "web", "ls"},
		{"den t web --root -- ls", "web", "ls"},
		{"den t web -- -- x", "web", "-- x"},
		{"den t -- -- x", "", "-- x"},
		{"den t web", "web", ""},
		{"den t", "", ""},
	} {
		var before, after []string
		app := &cli.App{Name: "den", Commands: []*cli.Command{{
			Name:  "t",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "root"}},
			Action: func(cliCtx *cli.Context) error {
				before, after = splitDashDash(cliCtx)
				return nil
			},
		}}}
		if err := app.Run(intersperse(app, strings.Fields(tc.in))); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := strings.Join(before, " "); got != tc.before {
			t.Errorf("%s: before -- %q, want %q", tc.in, got, tc.before)
		}
		if got := strings.Join(after, " "); got != tc.after {
			t.Errorf("%s: after -- %q, want %q", tc.in, got, tc.after)
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
