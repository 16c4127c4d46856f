package fetch

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sha256Of returns the sha256 Checksum of data.
func sha256Of(data []byte) Checksum {
	sum := sha256.Sum256(data)
	return Checksum{Type: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func TestParseChecksum(t *testing.T) {
	data := []byte("hello box\n")
	md := md5.Sum(data)
	s1 := sha1.Sum(data)
	s256 := sha256.Sum256(data)
	s384 := sha512.Sum384(data)
	s512 := sha512.Sum512(data)
	h := hex.EncodeToString
	tests := []struct {
		name    string
		in      string
		want    Checksum
		wantErr string
	}{
		{name: "sha256", in: "sha256:" + h(s256[:]), want: Checksum{"sha256", h(s256[:])}},
		{name: "upper", in: "SHA256:" + strings.ToUpper(h(s256[:])), want: Checksum{"sha256", h(s256[:])}},
		{name: "md5", in: "md5:" + h(md[:]), want: Checksum{"md5", h(md[:])}},
		{name: "sha1", in: "sha1:" + h(s1[:]), want: Checksum{"sha1", h(s1[:])}},
		{name: "sha384", in: "sha384:" + h(s384[:]), want: Checksum{"sha384", h(s384[:])}},
		{name: "sha512", in: " Sha512:" + h(s512[:]) + " ", want: Checksum{"sha512", h(s512[:])}},
		{name: "empty", in: "", want: Checksum{}},
		{name: "no type", in: h(s256[:]), wantErr: "want TYPE:HEX with TYPE one of md5, sha1, sha256, sha384, sha512"},
		{name: "unknown type", in: "sha3:" + h(s256[:]), wantErr: `unknown checksum type "sha3" (want one of md5, sha1, sha256, sha384, sha512)`},
		{name: "short", in: "sha256:abcd", wantErr: "sha256 digest has 4 hex digits, want 64"},
		{name: "sha1 length for sha256", in: "sha256:" + h(s1[:]), wantErr: "sha256 digest has 40 hex digits, want 64"},
		{name: "not hex", in: "md5:" + strings.Repeat("zz", 16), wantErr: "is not hexadecimal"},
		{name: "empty digest", in: "sha256:", wantErr: "sha256 digest has 0 hex digits, want 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChecksum(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseChecksum(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseChecksum(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseChecksum(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.IsZero() != (tc.in == "") {
				t.Errorf("IsZero() = %v", got.IsZero())
			}
			if got.IsZero() {
				return
			}
			// The hash of the parsed type reproduces the digest.
			hh := got.New()
			hh.Write(data)
			if h(hh.Sum(nil)) != got.Hex {
				t.Errorf("New() computes a different digest")
			}
		})
	}
}

func TestChecksumVerify(t *testing.T) {
	data := []byte("box contents")
	path := filepath.Join(t.TempDir(), "x.box")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	good := sha256Of(data)
	if err := good.Verify(path); err != nil {
		t.Fatalf("Verify with the right digest: %v", err)
	}
	if err := (Checksum{}).Verify(path); err != nil {
		t.Fatalf("zero Checksum: %v", err)
	}
	bad := sha256Of([]byte("other"))
	err := bad.Verify(path)
	var mismatch *MismatchError
	if !errors.As(err, &mismatch) || !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Verify with a wrong digest: %v", err)
	}
	for _, want := range []string{path, "expected " + bad.String(), "got " + good.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if err := good.Verify(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("missing file: %v", err)
	}
}
