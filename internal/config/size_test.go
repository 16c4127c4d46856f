package config

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // substring of the error; "" for none
	}{
		{"2048", 2048, ""},
		{"0", 0, ""},
		{"512M", 512 << 20, ""},
		{"1G", 1 << 30, ""},
		{"1g", 1 << 30, ""},
		{"1.5GiB", 3 << 29, ""},
		{"1.5gib", 3 << 29, ""},
		{"512MB", 512 << 20, ""},
		{"512Mi", 512 << 20, ""},
		{"2K", 2048, ""},
		{"1T", 1 << 40, ""},
		{"100B", 100, ""},
		{"1.5", 1, ""},
		{"0.3K", 307, ""},
		{" 1G", 1 << 30, ""},
		{"1 G", 1 << 30, ""},
		{"1G ", 1 << 30, ""},
		{"8388607T", 8388607 << 40, ""},
		{"8388608T", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"", 0, "not a size"},
		{"G", 0, "not a size"},
		{"-1G", 0, "not a size"},
		{"1e3", 0, "not a size"},
		{"12Q", 0, `"12Q" is not a size: use bytes or a number with K, M, G or T (powers of 1024), e.g. "512M", "1.5GiB"`},
		{"1.G", 0, "not a size"},
		{".5G", 0, "not a size"},
		{"1P", 0, "not a size"},
		{"1iB", 0, "not a size"},
		{"1GG", 0, "not a size"},
		{"0x10", 0, "not a size"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("ParseSize(%q): %v", tc.in, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("ParseSize(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
			case got != tc.want:
				t.Fatalf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{{0, "0 bytes"}, {512, "512 bytes"}, {1536, "1536 bytes"}, {3072, "3 KiB"}, {16 << 20, "16 MiB"}, {3 << 29, "1536 MiB"}, {1 << 40, "1 TiB"}} {
		t.Run(tc.want, func(t *testing.T) {
			if got := formatSize(tc.in); got != tc.want {
				t.Errorf("formatSize(%d) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
