// Package fetch downloads box files and Vagrant box catalogs over http(s),
// verifies checksums and compares box versions.
//
// Downloads land in dest+".part" and are renamed to dest only when complete
// and verified, so dest is either absent or whole. An interrupted download
// is resumed with an HTTP Range request, within one call and across calls.
package fetch

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// Checksum is an expected digest of a file. The zero Checksum checks
// nothing.
type Checksum struct {
	Type string // md5, sha1, sha256, sha384 or sha512, lowercase
	Hex  string // the digest in lowercase hexadecimal
}

// checksumTypes maps each known type to its hash and its size in bytes.
var checksumTypes = map[string]struct {
	new  func() hash.Hash
	size int
}{
	"md5":    {md5.New, md5.Size},
	"sha1":   {sha1.New, sha1.Size},
	"sha256": {sha256.New, sha256.Size},
	"sha384": {sha512.New384, sha512.Size384},
	"sha512": {sha512.New, sha512.Size},
}

// checksumTypeList names the known types for error messages.
const checksumTypeList = "md5, sha1, sha256, sha384, sha512"

// ErrChecksumMismatch is matched (with errors.Is) by every *MismatchError.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// MismatchError reports data whose digest is not the expected one.
type MismatchError struct {
	Source   string // the file or URL that was checked
	Expected Checksum
	Got      string // the digest found, in lowercase hexadecimal
}

// Error says what was checked, the expected digest and the one found.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("checksum mismatch for %q: expected %s, got %s:%s", e.Source, e.Expected, e.Expected.Type, e.Got)
}

// Unwrap lets errors.Is(err, ErrChecksumMismatch) work.
func (e *MismatchError) Unwrap() error { return ErrChecksumMismatch }

// ParseChecksum parses the value of a --checksum flag, "TYPE:HEX" such as
// "sha256:9f86d0…". The type is case-insensitive. An empty or blank string
// gives the zero Checksum (no check).
func ParseChecksum(s string) (Checksum, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Checksum{}, nil
	}
	typ, digest, ok := strings.Cut(t, ":")
	if !ok {
		return Checksum{}, fmt.Errorf("checksum %q: want TYPE:HEX with TYPE one of %s", s, checksumTypeList)
	}
	c, err := NewChecksum(typ, digest)
	if err != nil {
		return Checksum{}, fmt.Errorf("checksum %q: %w", s, err)
	}
	return c, nil
}

// NewChecksum makes a Checksum from a type (md5, sha1, sha256, sha384,
// sha512; case-insensitive) and a hexadecimal digest of the length that
// type produces.
func NewChecksum(typ, digest string) (Checksum, error) {
	typ = strings.ToLower(strings.TrimSpace(typ))
	digest = strings.ToLower(strings.TrimSpace(digest))
	kind, ok := checksumTypes[typ]
	if !ok {
		return Checksum{}, fmt.Errorf("unknown checksum type %q (want one of %s)", typ, checksumTypeList)
	}
	if _, err := hex.DecodeString(digest); err != nil {
		return Checksum{}, fmt.Errorf("%s digest %q is not hexadecimal", typ, digest)
	}
	if len(digest) != 2*kind.size {
		return Checksum{}, fmt.Errorf("%s digest has %d hex digits, want %d", typ, len(digest), 2*kind.size)
	}
	return Checksum{Type: typ, Hex: digest}, nil
}

// IsZero reports whether c is the zero Checksum, which checks nothing.
func (c Checksum) IsZero() bool { return c.Type == "" && c.Hex == "" }

// String returns c as "TYPE:HEX", or "" for the zero Checksum.
func (c Checksum) String() string {
	if c.IsZero() {
		return ""
	}
	return c.Type + ":" + c.Hex
}

// New returns a fresh hash of c's type, to compute a digest while data
// streams by; it returns nil for the zero Checksum or an unknown type.
func (c Checksum) New() hash.Hash {
	kind, ok := checksumTypes[c.Type]
	if !ok {
		return nil
	}
	return kind.new()
}

// Verify checks that the file at path has digest c. The zero Checksum
// accepts any file. A wrong digest gives a *MismatchError.
func (c Checksum) Verify(path string) error {
	if c.IsZero() {
		return nil
	}
	h := c.New()
	if h == nil {
		return fmt.Errorf("verify %q: unknown checksum type %q (want one of %s)", path, c.Type, checksumTypeList)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify %q: %w", path, err)
	}
	return c.check(h, path)
}

// check compares the digest in h with c, naming source in the error.
func (c Checksum) check(h hash.Hash, source string) error {
	got := hex.EncodeToString(h.Sum(nil))
	if got != c.Hex {
		return &MismatchError{Source: source, Expected: c, Got: got}
	}
	return nil
}
