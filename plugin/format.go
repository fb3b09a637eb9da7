package plugin

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vmihailenco/msgpack/v5"
)

// Errors a bad file can give, for errors.Is; the messages say more.
var (
	// ErrNotConcept: the file does not start with the concept magic.
	ErrNotConcept = errors.New("not a neti concept file")
	// ErrTruncated: the file ends before the header or payload does.
	ErrTruncated = errors.New("concept file is truncated")
	// ErrCorrupt: checksum mismatch, undecodable payload or stray bytes.
	ErrCorrupt = errors.New("concept file is corrupt")
	// ErrVersion: the file needs a newer major format version.
	ErrVersion = errors.New("concept file needs a newer neti")
)

var magic = [8]byte{0x89, 'N', 'E', 'T', 'I', '\r', '\n', 0x1a}

const headerSize = 64

// Header flags. New flags change how a payload must be read, so adding one
// needs a new major version; a v1 reader treats unknown bits as corruption.
const (
	flagDeflate = 1 << 0 // payload is DEFLATE-compressed
	flagCompact = 1 << 1 // tensors are stored lossy (see EncodeOptions)
	knownFlags  = flagDeflate | flagCompact
)

// Size limits. A full-precision SD 1.x concept with optimizer state is about
// 7 MB; a compact payload inflates to about twice its stored size.
const (
	maxFileSize     = 256 << 20
	maxInflateRatio = 16
)

// header is the fixed 64-byte start of a file (layout in the package doc).
type header struct {
	version      Version
	flags        uint32
	stored, raw  uint64
	sum          [32]byte
	headerPrefix []byte
}

// EncodeOptions selects the stored form.
type EncodeOptions struct {
	// Compact writes the shareable form: mapper matrices row-quantised
	// (quant.go, compact.go) and the payload DEFLATE-compressed, with no
	// optimizer state. An SD 1.x mapper (563,616 values, 2.25 MB in fp32)
	// fits in under 600 KB, and Encode checks that the mapper's outputs stay
	// within compactMaxErr of full precision before it returns. Without
	// Compact every tensor is stored as float32 and round-trips bit-exactly.
	Compact bool
}

// Encode validates c and returns its file bytes.
func Encode(c *Concept, opt EncodeOptions) ([]byte, error) {
	if c == nil {
		return nil, errors.New("plugin: encode: nil concept")
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("plugin: encode %s: %w", c.Token, err)
	}
	w := toWire(c)
	var flags uint32
	if opt.Compact {
		if err := compactWire(c, w); err != nil {
			return nil, fmt.Errorf("plugin: encode %s compact: %w", c.Token, err)
		}
		flags |= flagCompact | flagDeflate
	}
	payload, err := marshal(w)
	if err != nil {
		return nil, fmt.Errorf("plugin: encode %s: %w", c.Token, err)
	}
	raw := len(payload)
	if flags&flagDeflate != 0 {
		var buf bytes.Buffer
		zw, err := flate.NewWriter(&buf, flate.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("plugin: encode %s: %w", c.Token, err)
		}
		if _, err := zw.Write(payload); err != nil {
			return nil, fmt.Errorf("plugin: encode %s: compress: %w", c.Token, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("plugin: encode %s: compress: %w", c.Token, err)
		}
		payload = buf.Bytes()
	}
	out := make([]byte, headerSize+len(payload))
	copy(out, magic[:])
	binary.LittleEndian.PutUint16(out[8:], VersionMajor)
	binary.LittleEndian.PutUint16(out[10:], VersionMinor)
	binary.LittleEndian.PutUint32(out[12:], flags)
	binary.LittleEndian.PutUint64(out[16:], uint64(len(payload)))
	binary.LittleEndian.PutUint64(out[24:], uint64(raw))
	copy(out[headerSize:], payload)
	sum := checksum(out[:32], payload)
	copy(out[32:], sum[:])
	return out, nil
}

// marshal encodes the payload with sorted map keys, so equal concepts give
// equal bytes (and equal checksums).
func marshal(w any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func checksum(prefix, payload []byte) [32]byte {
	h := sha256.New()
	h.Write(prefix)
	h.Write(payload)
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// parseHeader checks the magic and version; b may be just the file's start.
func parseHeader(b []byte) (*header, error) {
	n := min(len(b), len(magic))
	if !bytes.Equal(b[:n], magic[:n]) {
		return nil, fmt.Errorf("%w: it looks like %s", ErrNotConcept, sniff(b))
	}
	if len(b) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrTruncated, len(b), headerSize)
	}
	h := &header{
		version: Version{int(binary.LittleEndian.Uint16(b[8:])), int(binary.LittleEndian.Uint16(b[10:]))},
		flags:   binary.LittleEndian.Uint32(b[12:]),
		stored:  binary.LittleEndian.Uint64(b[16:]),
		raw:     binary.LittleEndian.Uint64(b[24:]),
	}
	copy(h.sum[:], b[32:64])
	h.headerPrefix = b[:32]
	if h.version.Major > VersionMajor {
		return nil, fmt.Errorf("%w: the file is format version %s; this build reads version %d.x (up to %d.%d): update neti",
			ErrVersion, h.version, VersionMajor, VersionMajor, VersionMinor)
	}
	if h.version.Major < 1 {
		return nil, fmt.Errorf("%w: format version %s does not exist", ErrCorrupt, h.version)
	}
	return h, nil
}

// Decode parses and validates a concept file held in memory.
func Decode(b []byte) (*Concept, error) {
	c, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("plugin: decode: %w", err)
	}
	return c, nil
}

func decode(b []byte) (*Concept, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	have := uint64(len(b) - headerSize)
	if h.stored > have {
		return nil, fmt.Errorf("%w: the header announces %d payload bytes, the file has %d", ErrTruncated, h.stored, have)
	}
	if h.stored < have {
		return nil, fmt.Errorf("%w: %d stray bytes after the payload", ErrCorrupt, have-h.stored)
	}
	payload := b[headerSize:]
	if checksum(h.headerPrefix, payload) != h.sum {
		return nil, fmt.Errorf("%w: checksum mismatch (the file was damaged after it was written)", ErrCorrupt)
	}
	if h.flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown header flags 0x%x", ErrCorrupt, h.flags&^knownFlags)
	}
	if h.flags&flagDeflate != 0 {
		if payload, err = inflate(payload, h.raw); err != nil {
			return nil, err
		}
	} else if h.raw != h.stored {
		return nil, fmt.Errorf("%w: uncompressed payload of %d bytes announced as %d", ErrCorrupt, h.stored, h.raw)
	}
	if err := scanMsgpack(payload); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	var w wireConcept
	if err := msgpack.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrCorrupt, err)
	}
	c, err := fromWire(&w)
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	c.Version = h.version
	c.Compact = h.flags&flagCompact != 0
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// inflate decompresses a payload that must inflate to exactly raw bytes,
// refusing ratios no concept file has (a decompression bomb).
func inflate(stored []byte, raw uint64) ([]byte, error) {
	if raw > uint64(len(stored))*maxInflateRatio+1024 || raw > maxFileSize {
		return nil, fmt.Errorf("%w: %d compressed bytes announced to inflate to %d", ErrCorrupt, len(stored), raw)
	}
	zr := flate.NewReader(bytes.NewReader(stored))
	defer zr.Close()
	var buf bytes.Buffer
	// Grow with the data actually produced, not the announced size.
	n, err := io.Copy(&buf, io.LimitReader(zr, int64(raw)+1))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: compressed payload ends early", ErrCorrupt)
		}
		return nil, fmt.Errorf("%w: compressed payload: %v", ErrCorrupt, err)
	}
	if uint64(n) != raw {
		return nil, fmt.Errorf("%w: payload inflates to %d bytes, the header says %d", ErrCorrupt, n, raw)
	}
	return buf.Bytes(), nil
}

// Read reads and validates the concept file at path.
func Read(path string) (*Concept, error) {
	c, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("plugin: read %s: %w", path, err)
	}
	return c, nil
}

func read(path string) (*Concept, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Look at the header first, so a multi-gigabyte model file handed to
	// us by mistake gets "this is a safetensors file", not "too large".
	head := make([]byte, headerSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if _, err := parseHeader(head[:n]); err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("%w: %d bytes is more than any concept (limit %d)", ErrCorrupt, st.Size(), maxFileSize)
	}
	b := make([]byte, st.Size())
	copy(b, head[:n])
	if _, err := io.ReadFull(f, b[n:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return decode(b)
}

// Write encodes c and replaces path atomically: the bytes go to a temporary
// file in the same folder, are synced, and only then renamed over path, so
// an interrupted save leaves the previous file intact.
func Write(path string, c *Concept, opt EncodeOptions) error {
	b, err := Encode(c, opt)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, b); err != nil {
		return fmt.Errorf("plugin: write %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, werr := tmp.Write(b)
	werr = errors.Join(werr, tmp.Chmod(0o644), tmp.Sync(), tmp.Close())
	if werr != nil {
		os.Remove(name)
		return werr
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return err
	}
	// Persist the rename itself; not every system can sync a folder, and
	// the data is already safe, so a failure here is not reported.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
