package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/den-dev/den/internal/fuzzutil"
)

// FuzzLoad decodes den.hcl files seeded with testdata/config (valid,
// invalid and host fixtures): every problem must come back as a
// *DiagError that renders, and a file that loads is then held against a
// fixed host.
func FuzzLoad(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "config", "*", "*.hcl"))
	if len(names) == 0 {
		f.Fatal("no fixtures in testdata/config")
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	path := filepath.Join(f.TempDir(), FileName)
	f.Fuzz(func(t *testing.T, src []byte) {
		defer fuzzutil.Watchdog(t)()
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := Load(path)
		if err == nil {
			err = CheckHost(p, testHost())
		}
		if err == nil {
			return
		}
		var de *DiagError
		if !errors.As(err, &de) {
			t.Fatalf("%T %v, want a *DiagError", err, err)
		}
		if !de.Diags.HasErrors() {
			t.Fatalf("a DiagError without errors: %v", de.Diags)
		}
		_ = de.Error()
		WriteDiagnostics(io.Discard, de.Files, de.Diags, true)
	})
}
