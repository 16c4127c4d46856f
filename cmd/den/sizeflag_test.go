package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/den-dev/den/box"
)

func TestBoxAddMaxSize(t *testing.T) {
	denHome(t)
	file := filepath.Join(archives, "bomb-files.box") // 32 MiB of files in 7.5 KB
	_, _, err := runDen(t, "box", "add", "test/files", file, "--max-size", "8M")
	if !errors.Is(err, box.ErrTooLarge) || !strings.Contains(err.Error(), "more than 8.0 MiB") {
		t.Errorf("add with --max-size 8M: %v", err)
	}
	mustRun(t, "box", "add", "test/files", file, "--max-size", "64MiB")
	for _, bad := range []string{"lots", "0", "-1G"} {
		_, _, err := runDen(t, "box", "add", "test/other", file, "--max-size", bad)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--max-size") {
			t.Errorf("--max-size %s: %v, want a usage error", bad, err)
		}
	}
}
