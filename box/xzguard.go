package box

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"

	"github.com/den-dev/den/internal/ui"
)

// xzGuard passes an xz stream through unchanged while it follows the
// stream's framing (xz file format 1.0.4: stream header, blocks, index,
// footer, padding), and fails before the decoder is given a block header
// whose LZMA2 dictionary is larger than max. ulikunitz/xz allocates
// whatever dictionary a block header asks for (up to 4 GiB) and its
// ReaderConfig.DictCap is a minimum, not a limit. The decoder checks
// everything else (CRCs, sizes, the index); the guard only has to stay in
// step with it, and refuses what it cannot follow.
type xzGuard struct {
	r   io.Reader
	max int64

	state     xzState
	buf       []byte // bytes of the current header being collected
	want      int    // how many bytes buf must hold before the state acts
	skip      int64  // bytes to pass without looking (chunk data, padding, check)
	checkSize int64  // of each block's check, from the stream flags
	blockData int64  // compressed bytes of the current block so far
	blocks    int64  // blocks seen in the current stream
	records   int64  // index: VLIs still to read
	indexLen  int64  // index: bytes so far, from its indicator on
	err       error
}

type xzState int

const (
	xzStreamHeader xzState = iota // 12 bytes
	xzBlockOrIndex                // 1 byte: a block header's size, or 0 for the index
	xzBlockHeader                 // the rest of the block header
	xzChunk                       // an LZMA2 chunk's control byte
	xzChunkHeader                 // the rest of an LZMA2 chunk header
	xzIndex                       // the index's VLIs, byte by byte
	xzIndexEnd                    // the index's padding and CRC32
	xzFooter                      // 12 bytes
	xzPadding                     // zero bytes in fours, or the next stream
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// xzCheckSizes gives the size of a block's check for each check ID.
var xzCheckSizes = [16]int64{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

func newXzGuard(r io.Reader, max int64) *xzGuard {
	return &xzGuard{r: r, max: max, state: xzStreamHeader, want: 12}
}

func (g *xzGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if serr := g.scan(p[:n]); serr != nil {
		g.err = serr
		return 0, serr
	}
	return n, err
}

// scan follows the framing over the bytes p.
func (g *xzGuard) scan(p []byte) error {
	for len(p) > 0 {
		if g.skip > 0 {
			k := min(g.skip, int64(len(p)))
			g.skip -= k
			p = p[k:]
			continue
		}
		k := min(g.want-len(g.buf), len(p))
		g.buf = append(g.buf, p[:k]...)
		p = p[k:]
		if len(g.buf) < g.want {
			continue
		}
		if err := g.step(); err != nil {
			return err
		}
	}
	return nil
}

// next moves to state s, collecting want bytes for it.
func (g *xzGuard) next(s xzState, want int) {
	g.state, g.want, g.buf = s, want, g.buf[:0]
}

// step acts on a complete buf.
func (g *xzGuard) step() error {
	b := g.buf
	switch g.state {
	case xzStreamHeader:
		if !bytes.Equal(b[:6], xzMagic) || b[6] != 0 || b[7] > 0x0f {
			return errors.New("xz: damaged stream header")
		}
		g.checkSize, g.blocks = xzCheckSizes[b[7]], 0
		g.next(xzBlockOrIndex, 1)
	case xzBlockOrIndex:
		if b[0] == 0 {
			g.indexLen, g.records = 1, -1
			g.next(xzIndex, 1)
			return nil
		}
		g.next(xzBlockHeader, int(b[0])*4+3) // (size+1)*4 bytes, this one read
		g.buf = append(g.buf, b[0])
		g.want++
	case xzBlockHeader:
		if err := g.blockHeader(b); err != nil {
			return err
		}
		g.blocks++
		g.blockData = 0
		g.next(xzChunk, 1)
	case xzChunk:
		g.blockData++
		c := b[0]
		switch {
		case c == 0: // end of the block's data: padding to 4, then the check
			g.skip = (4-g.blockData%4)%4 + g.checkSize
			g.next(xzBlockOrIndex, 1)
		case c == 1 || c == 2: // uncompressed chunk: 2 bytes of size-1
			g.next(xzChunkHeader, 3)
			g.buf = append(g.buf, c)
		case c >= 0x80: // LZMA chunk: 2 bytes unpacked, 2 packed, props
			n := 5
			if c >= 0xc0 {
				n = 6
			}
			g.next(xzChunkHeader, n)
			g.buf = append(g.buf, c)
		default:
			return fmt.Errorf("xz: damaged LZMA2 data (control byte %#x)", c)
		}
	case xzChunkHeader:
		size := int64(binary.BigEndian.Uint16(b[1:3])) + 1 // uncompressed chunk
		if b[0] >= 0x80 {
			size = int64(binary.BigEndian.Uint16(b[3:5])) + 1
		}
		g.blockData += int64(len(b)-1) + size
		g.skip = size
		g.next(xzChunk, 1)
	case xzIndex:
		g.indexLen++
		if b[0]&0x80 != 0 { // the VLI goes on
			g.next(xzIndex, 1)
			return nil
		}
		if g.records < 0 { // that was the number of records
			if g.indexLen > 10 {
				return errors.New("xz: damaged index")
			}
			// The decoder checks the number against the blocks it read;
			// each record is 2 VLIs.
			g.records = 2 * g.blocks
		} else {
			g.records--
		}
		if g.records > 0 {
			g.next(xzIndex, 1)
			return nil
		}
		g.next(xzIndexEnd, int((4-g.indexLen%4)%4)+4)
	case xzIndexEnd:
		g.next(xzFooter, 12)
	case xzFooter:
		if !bytes.Equal(b[10:12], []byte("YZ")) {
			return errors.New("xz: damaged stream footer")
		}
		g.next(xzPadding, 1)
	case xzPadding:
		switch b[0] {
		case 0:
			g.next(xzPadding, 1)
		case xzMagic[0]:
			g.next(xzStreamHeader, 12)
			g.buf = append(g.buf, b[0])
		default:
			return errors.New("xz: data after the end of the stream")
		}
	}
	return nil
}

// blockHeader reads a block header (its size byte included) and checks the
// dictionary of its LZMA2 filter.
func (g *xzGuard) blockHeader(h []byte) error {
	flags := h[1]
	r := bytes.NewReader(h[2 : len(h)-4]) // without the CRC32
	vli := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9; i++ {
			c, err := r.ReadByte()
			if err != nil {
				return 0, err
			}
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, nil
			}
		}
		return 0, errors.New("too long")
	}
	damaged := errors.New("xz: damaged block header")
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			if _, err := vli(); err != nil {
				return damaged
			}
		}
	}
	for range int(flags&3) + 1 {
		id, err := vli()
		if err != nil {
			return damaged
		}
		n, err := vli()
		if err != nil || n > uint64(r.Len()) {
			return damaged
		}
		props := make([]byte, n)
		r.Read(props)
		if id != 0x21 {
			continue // not LZMA2: the decoder refuses it
		}
		if n != 1 {
			return damaged
		}
		dict, err := lzma.DecodeDictCap(props[0])
		if err != nil {
			return damaged
		}
		if dict > g.max {
			return &windowError{fmt.Sprintf("xz: a dictionary of %s, larger than the %s den allows (xz -9 uses 64 MiB)", ui.Bytes(dict), ui.Bytes(g.max)), nil}
		}
	}
	return nil
}
