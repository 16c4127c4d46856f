package box

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// xzData is half text, half random bytes: LZMA chunks and uncompressed
// chunks both.
func xzData() []byte {
	var b bytes.Buffer
	for i := range 2000 {
		b.WriteString(strings.Repeat("den box ", i%7+1) + "\n")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 64 << 10 {
		b.WriteByte(byte(r.Uint32()))
	}
	return b.Bytes()
}

func xzOf(t *testing.T, data []byte, cfg xz.WriterConfig) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := cfg.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestXzGuardFollowsStreams decodes xz streams of every shape the format
// allows through the guard: one or many blocks, every check, several
// streams with padding between them, and streams made by the xz tool.
func TestXzGuardFollowsStreams(t *testing.T) {
	data := xzData()
	streams := map[string][]byte{}
	for _, check := range []struct {
		name string
		cfg  xz.WriterConfig
	}{{"crc32", xz.WriterConfig{CheckSum: xz.CRC32}}, {"crc64", xz.WriterConfig{}}, {"sha256", xz.WriterConfig{CheckSum: xz.SHA256}}, {"none", xz.WriterConfig{NoCheckSum: true}}} {
		streams[check.name] = xzOf(t, data, check.cfg)
		cfg := check.cfg
		cfg.BlockSize = 5000
		streams[check.name+" blocks"] = xzOf(t, data, cfg)
	}
	streams["two streams, padding"] = append(append(append([]byte{}, streams["crc32"]...), 0, 0, 0, 0, 0, 0, 0, 0), streams["sha256 blocks"]...)
	streams["empty"] = xzOf(t, nil, xz.WriterConfig{})
	if _, err := exec.LookPath("xz"); err == nil {
		for _, args := range [][]string{{"-6"}, {"-9e", "--check=sha256"}, {"-T2", "--block-size=8KiB", "--check=crc32"}, {"--format=xz", "--check=none", "-0"}} {
			cmd := exec.Command("xz", append(args, "-c")...)
			cmd.Stdin = bytes.NewReader(data)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz %v: %v", args, err)
			}
			streams["xz "+strings.Join(args, " ")] = out
		}
	} else {
		t.Log("no xz tool: streams of ulikunitz/xz only")
	}
	for name, s := range streams {
		t.Run(name, func(t *testing.T) {
			want := data
			if name == "empty" {
				want = nil
			} else if name == "two streams, padding" {
				want = append(append([]byte{}, data...), data...)
			}
			r, c, err := Decompress(bytes.NewReader(s))
			if err != nil || c != Xz {
				t.Fatalf("Decompress: %v %v", c, err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want %d: %v", len(got), len(want), err)
			}
		})
	}
}

// TestXzGuardRefuses checks streams the guard must stop, at any read size.
func TestXzGuardRefuses(t *testing.T) {
	good := xzOf(t, xzData(), xz.WriterConfig{CheckSum: xz.CRC32, BlockSize: 5000})
	big := xzOf(t, []byte("x"), xz.WriterConfig{})
	// Patch the first block header's dictionary code to 32 (256 MiB) and
	// its CRC32.
	h := big[12:]
	n := (int(h[0]) + 1) * 4
	h[4] = 32
	binary.LittleEndian.PutUint32(h[n-4:], crc32.ChecksumIEEE(h[:n-4]))
	for _, tc := range []struct {
		name string
		s    []byte
		want string
	}{
		{"256 MiB dictionary", big, "dictionary of 256.0 MiB"},
		{"second stream with a 256 MiB dictionary", append(append([]byte{}, good...), big...), "dictionary of 256.0 MiB"},
		{"garbage after the stream", append(append([]byte{}, good...), 'x'), "data after the end"},
	} {
		for _, chunk := range []int{1, 7, 4096} {
			g := newXzGuard(bytes.NewReader(tc.s), maxWindow)
			_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{g}, make([]byte, chunk))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s, reads of %d: %v, want %q", tc.name, chunk, err, tc.want)
			}
		}
	}
}
