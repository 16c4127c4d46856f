package ui

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSayIndentsContinuation(t *testing.T) {
	var out bytes.Buffer
	u := &UI{Out: &out, Err: &out}
	u.Say("web", "first\nsecond")
	want := "==> web: first\n         second\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestProgressPlainWithoutTTY(t *testing.T) {
	var out bytes.Buffer
	u := &UI{Out: &out, Err: &out}
	p := u.Progress("box", "Unpacking", 100).(*Progress)
	p.Update(10, "")
	if out.Len() != 0 {
		t.Fatalf("progress printed before its first interval: %q", out.String())
	}
	p.last = time.Now().Add(-6 * time.Second) // five seconds went by
	p.Update(50, "")
	p.Update(60, "") // too soon after the last line
	p.Done()
	if bytes.ContainsAny(out.Bytes(), "\r\033") {
		t.Fatalf("non-TTY progress wrote control characters: %q", out.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("50.0%")) || bytes.Contains(out.Bytes(), []byte("60.0%")) {
		t.Fatalf("want one progress line at 50%%: %q", out.String())
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536 << 20: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"lines", []string{"a\nb\n"}, "    web: a\n    web: b\n"},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, "    web: hello\n    web: world\n"},
		{"partial last line on close", []string{"done\npartial"}, "    web: done\n    web: partial\n"},
		{"crlf and empty lines", []string{"a\r\n\nb\r\n"}, "    web: a\n    web: \n    web: b\n"},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			u := &UI{Out: &out, Err: &errOut}
			w := u.Output("web", false)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want || errOut.Len() != 0 {
				t.Errorf("Out %q, Err %q; want Out %q", out.String(), errOut.String(), tc.want)
			}
		})
	}

	t.Run("stderr", func(t *testing.T) {
		var out, errOut bytes.Buffer
		u := &UI{Out: &out, Err: &errOut}
		w := u.Output("db", true)
		io.WriteString(w, "oops\n")
		if errOut.String() != "    db: oops\n" || out.Len() != 0 {
			t.Errorf("Out %q, Err %q; want the line on Err", out.String(), errOut.String())
		}
	})

	t.Run("parallel writers keep lines whole", func(t *testing.T) {
		var out bytes.Buffer
		u := &UI{Out: &out, Err: &out}
		var wg sync.WaitGroup
		for _, name := range []string{"web", "db", "cache"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := u.Output(name, false)
				defer w.Close()
				for i := range 200 {
					fmt.Fprintf(w, "line %d of ", i)
					fmt.Fprintf(w, "%s\n", name)
				}
			}()
		}
		wg.Wait()
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 600 {
			t.Fatalf("got %d lines, want 600", len(lines))
		}
		for _, l := range lines {
			name, rest, _ := strings.Cut(strings.TrimPrefix(l, "    "), ": ")
			if !strings.HasPrefix(rest, "line ") || !strings.HasSuffix(rest, " of "+name) {
				t.Fatalf("mixed line %q", l)
			}
		}
	})
}
