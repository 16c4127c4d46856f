package box

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/den-dev/den/internal/ui"
)

// DefaultMaxSize is the largest a box may unpack to unless AddOptions says
// otherwise: a Debian rootfs is under 1 GiB, a big development box a few.
const DefaultMaxSize = 16 << 30

// maxWindow bounds the memory a decompressor may keep for back-references:
// a zstd window or an xz dictionary. It is the zstd tool's own default
// limit (a window of 2^27 bytes, what --long uses) and twice the
// dictionary of xz -9; gzip's window is 32 KiB anyway.
const maxWindow = 128 << 20

// ErrTooLarge is wrapped by the error of Store.Add for a box that would
// unpack to more than AddOptions.MaxSize.
var ErrTooLarge = errors.New("box too large")

// ErrNoSpace is wrapped by the error of Store.Add for a box that would not
// fit in the store's filesystem with den's margin left free.
var ErrNoSpace = errors.New("not enough free space")

// fsSpace is what statfs says of a filesystem.
type fsSpace struct {
	Avail     uint64 // bytes an unprivileged user may still write
	Total     uint64 // bytes in all
	FreeFiles uint64 // free inodes
	Files     uint64 // inodes in all; 0 when the filesystem does not count them
}

// fsStat reports the space of the filesystem holding dir; tests replace it.
var fsStat = func(dir string) (fsSpace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fsSpace{}, fmt.Errorf("free space of %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return fsSpace{Avail: st.Bavail * bs, Total: st.Blocks * bs, FreeFiles: st.Ffree, Files: st.Files}, nil
}

// blockSize is what den counts an entry as at least, and rounds file sizes
// up to: one filesystem block.
const blockSize = 4096

// restatEvery is how much an unpack may write between two looks at the
// filesystem's free space (others write there too).
const restatEvery = 64 << 20

// budget bounds what an unpack writes: at most max bytes (each entry
// counted in whole blocks, at least one), and never so much that the
// filesystem's free space or free inodes fall below den's margin: 5% of the
// filesystem, at most 1 GiB, and 1% of its inodes, at most 10000.
type budget struct {
	dir  string // where the box is unpacked
	max  int64
	used int64 // bytes counted so far
	// what statfs said when used was at, and the margins it gave
	space              fsSpace
	atUsed, atEntries  int64
	entries            int64
	marginB, marginIno uint64
}

// newBudget looks at dir's filesystem and refuses at once when need more
// bytes (the box file's size, when known) would not fit with the margin.
func newBudget(dir string, max, need int64) (*budget, error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	b := &budget{dir: dir, max: max}
	if err := b.stat(); err != nil {
		return nil, err
	}
	if err := b.fits(need, 0); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *budget) stat() error {
	sp, err := fsStat(b.dir)
	if err != nil {
		return err
	}
	b.space, b.atUsed, b.atEntries = sp, b.used, b.entries
	b.marginB = min(1<<30, sp.Total/20)
	b.marginIno = min(10000, sp.Files/100)
	return nil
}

// fits checks that n more bytes and files more inodes leave the margins
// free, by what statfs said minus what was written since.
func (b *budget) fits(n, files int64) error {
	written := uint64(b.used - b.atUsed + n)
	if b.space.Avail < b.marginB || b.space.Avail-b.marginB < written {
		return fmt.Errorf("%w in %s for the box: %s were free and %s more would leave less than the %s den keeps free; free some space, or set DEN_HOME to a larger filesystem",
			ErrNoSpace, b.dir, ui.Bytes(int64(b.space.Avail)), ui.Bytes(int64(written)), ui.Bytes(int64(b.marginB)))
	}
	if b.space.Files == 0 {
		return nil
	}
	made := uint64(b.entries - b.atEntries + files)
	if b.space.FreeFiles < b.marginIno || b.space.FreeFiles-b.marginIno < made {
		return fmt.Errorf("%w in %s for the box: %d inodes were free and %d more would leave less than the %d den keeps free; free some, or set DEN_HOME to another filesystem",
			ErrNoSpace, b.dir, b.space.FreeFiles, made, b.marginIno)
	}
	return nil
}

// take counts one entry of size bytes (0 for all but regular files)
// before it is written, refusing it when the box grows past max or the
// filesystem would fill up.
func (b *budget) take(size int64) error {
	if size < 0 || size > b.max {
		return b.tooLarge()
	}
	cost := max(blockSize, (size+blockSize-1)/blockSize*blockSize)
	if cost > b.max-b.used {
		return b.tooLarge()
	}
	if b.used-b.atUsed >= restatEvery {
		if err := b.stat(); err != nil {
			return err
		}
	}
	if err := b.fits(cost, 1); err != nil {
		return err
	}
	b.used += cost
	b.entries++
	return nil
}

func (b *budget) tooLarge() error {
	return fmt.Errorf("%w: it unpacks to more than %s, den's limit for a box; if you trust it, raise the limit with --max-size", ErrTooLarge, ui.Bytes(b.max))
}

// streamLimit bounds the bytes a decompressed stream of the box may hold:
// twice max (tar headers and padding, and entries den skips, also cost
// time to read), and 1 MiB more for small limits.
func (b *budget) streamLimit(r io.Reader) io.Reader {
	return &limitedReader{r: r, left: 2*b.max + 1<<20, err: b.tooLarge()}
}

// limitedReader reads at most left bytes from r; if r has more, the read
// after the last allowed byte returns err.
type limitedReader struct {
	r    io.Reader
	left int64
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, err := l.r.Read(one[:]); n > 0 {
			return 0, l.err
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
