package lxc

import (
	"errors"
	"strings"
	"testing"

	"github.com/den-dev/den/internal/fuzzutil"
	"unicode"
)

// FuzzFilterBoxConfig feeds FilterBoxConfig box configs: whatever it
// allows must be an allowlisted key whose value, written as LXC writes it,
// is one printable line; whatever it refuses is named by line.
func FuzzFilterBoxConfig(f *testing.F) {
	for _, l := range hostileLines {
		f.Add(l)
	}
	f.Add("lxc.arch = amd64\nlxc.tty.max = 4\nlxc.environment = A=b c\nlxc.init.cmd = '/sbin/init x'\nlxc.cap.drop = sys_time 3\nlxc.console.size = 1MB\nlxc.signal.stop = SIGRTMAX-2")
	f.Fuzz(func(t *testing.T, data string) {
		defer fuzzutil.Watchdog(t)()
		lines := strings.Split(data, "\n")
		allowed, dropped, err := FilterBoxConfig(lines)
		if err != nil {
			var be *BoxConfigError
			if !errors.As(err, &be) || be.Line < 1 || be.Line > len(lines) || be.Text != lines[be.Line-1] {
				t.Fatalf("error %v does not name a line of the input", err)
			}
			return
		}
		if len(allowed)+len(dropped) > len(lines) {
			t.Errorf("%d allowed and %d dropped from %d lines", len(allowed), len(dropped), len(lines))
		}
		for _, kv := range allowed {
			if boxKeys[kv[0]] == nil {
				t.Errorf("key %q allowed", kv[0])
			}
			if kv[1] == "" || strings.IndexFunc(kv[1], func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				t.Errorf("value %q of %s allowed", kv[1], kv[0])
			}
		}
	})
}
