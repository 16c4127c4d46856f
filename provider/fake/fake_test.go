package fake_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/den-dev/den/provider"
	"github.com/den-dev/den/provider/fake"
	"github.com/den-dev/den/provider/providertest"
)

func TestConformance(t *testing.T) {
	rootfs := t.TempDir()
	for _, d := range []string{"etc", "var", "home/den"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	p := fake.New(t.TempDir())
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Name:     func(t *testing.T) string { return fmt.Sprintf("fake-%d", n.Add(1)) },
		Spec: func(t *testing.T, name string) *provider.Spec {
			return &provider.Spec{Name: name, Rootfs: rootfs, Hostname: name, Memory: 256 << 20, CPUs: 1}
		},
	})
}
