// Package torchpickle reads files written by torch.save (the zip container
// used since torch 1.6: a stored ZIP holding <dir>/data.pkl and one
// <dir>/data/<key> entry per storage) without running any Python.
//
// The pickle is evaluated by a small stack machine that knows the opcodes
// torch writes (protocol 2, plus the few later ones that are pure data). A
// GLOBAL is checked against an allow-list the moment it is read, so a
// hostile file (one that names posix.system, say) fails before anything
// could be called. Every allocation is bounded by the size of the input.
package torchpickle

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxPickleSize bounds data.pkl. The pickle of a full SD checkpoint is a few
// MB; anything far larger is not a state dict.
const MaxPickleSize = 256 << 20

// maxDepth bounds the nesting of the returned object tree, so a crafted
// pickle cannot exhaust the goroutine stack when the tree is walked.
const maxDepth = 1000

// Options tune a load.
type Options struct {
	// AllowClasses lists extra "module.Name" globals. Each call (REDUCE or
	// NEWOBJ) of one of them becomes an *Object holding the arguments and
	// the BUILD state; nothing is ever executed.
	AllowClasses []string
	// Lazy leaves Tensor.Raw nil: Tensor.ReadRaw then reads the bytes from
	// the reader given to LoadReader, which must stay open while tensors
	// are read. Big checkpoints use it to avoid holding every tensor in
	// memory. Load (which closes its file) refuses it.
	Lazy bool
}

// Object is an instance of an allow-listed class: Args are the arguments of
// its REDUCE or NEWOBJ, State what BUILD gave it (nil when there was no
// BUILD). Both are converted like the rest of the tree.
type Object struct {
	Class string
	Args  []any
	State any
}

// Load reads a torch.save file. The result is a tree of map[string]any
// (dict, OrderedDict; non-string keys are formatted as decimal text), []any
// (list, tuple, set), string, []byte, int64, float64, bool, nil, *Tensor and
// *Object. Dict order is not kept.
func Load(path string, opts Options) (any, error) {
	if opts.Lazy {
		return nil, fmt.Errorf("torchpickle: %s: Options.Lazy needs LoadReader with a reader that stays open", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %s: %w", path, err)
	}
	v, err := load(f, st.Size(), opts)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %s: %w", path, err)
	}
	return v, nil
}

// LoadReader is Load on an open file or an in-memory buffer of size bytes.
func LoadReader(r io.ReaderAt, size int64, opts Options) (any, error) {
	v, err := load(r, size, opts)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	return v, nil
}

// archive is the zip container with the entries torch.save writes.
type archive struct {
	r       io.ReaderAt
	size    int64
	prefix  string // "<dir>/" or "" when data.pkl sits at the root
	entries map[string]*zip.File
}

func openArchive(r io.ReaderAt, size int64) (*archive, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	// The legacy format is a bare sequence of pickles, starting with PROTO 2.
	var magic [2]byte
	if n, _ := r.ReadAt(magic[:], 0); n == 2 && magic == [2]byte{0x80, 0x02} {
		return nil, errors.New("legacy torch serialization (torch < 1.6, not a zip archive) is not supported: re-save the file with a newer torch")
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("not a complete torch zip archive (truncated or not a torch.save file): %w", err)
	}
	a := &archive{r: r, size: size, entries: make(map[string]*zip.File, len(zr.File))}
	var pkl []string
	for _, f := range zr.File {
		if _, dup := a.entries[f.Name]; dup {
			return nil, fmt.Errorf("zip entry %q appears twice", f.Name)
		}
		a.entries[f.Name] = f
		if f.Name == "data.pkl" || (strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1) {
			pkl = append(pkl, f.Name)
		}
	}
	switch len(pkl) {
	case 0:
		return nil, errors.New("no data.pkl entry: not a torch.save archive")
	case 1:
	default:
		return nil, fmt.Errorf("several data.pkl entries (%s): ambiguous archive", strings.Join(pkl, ", "))
	}
	a.prefix = strings.TrimSuffix(pkl[0], "data.pkl")
	return a, nil
}

// span locates a stored entry's bytes in the underlying reader. torch
// never compresses; refusing compressed entries keeps every read bounded by
// the real file size.
func (a *archive) span(name string) (off, n int64, err error) {
	f, ok := a.entries[name]
	if !ok {
		return 0, 0, fmt.Errorf("zip entry %q is missing", name)
	}
	if f.Method != zip.Store {
		return 0, 0, fmt.Errorf("zip entry %q is compressed (method %d); torch archives store entries uncompressed", name, f.Method)
	}
	off, err = f.DataOffset()
	if err != nil {
		return 0, 0, fmt.Errorf("zip entry %q: %w", name, err)
	}
	if f.UncompressedSize64 != f.CompressedSize64 || f.UncompressedSize64 > uint64(a.size) ||
		off < 0 || off > a.size-int64(f.UncompressedSize64) {
		return 0, 0, fmt.Errorf("zip entry %q: %d bytes at offset %d do not fit in the %d-byte file (truncated?)", name, f.UncompressedSize64, off, a.size)
	}
	return off, int64(f.UncompressedSize64), nil
}

func (a *archive) read(name string, limit int64) ([]byte, error) {
	off, n, err := a.span(name)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("zip entry %q is %d bytes, more than the %d allowed", name, n, limit)
	}
	b := make([]byte, n)
	if err := readFull(a.r, b, off); err != nil {
		return nil, fmt.Errorf("zip entry %q: %w", name, err)
	}
	return b, nil
}

func load(r io.ReaderAt, size int64, opts Options) (any, error) {
	a, err := openArchive(r, size)
	if err != nil {
		return nil, err
	}
	pkl, err := a.read(a.prefix+"data.pkl", MaxPickleSize)
	if err != nil {
		return nil, err
	}
	u := newUnpickler(pkl, a, opts)
	v, err := u.run()
	if err != nil {
		return nil, fmt.Errorf("%sdata.pkl: %w", a.prefix, err)
	}
	out, err := convert(v, map[any]any{}, map[any]bool{}, 0)
	if err != nil {
		return nil, fmt.Errorf("%sdata.pkl: %w", a.prefix, err)
	}
	return out, nil
}

// readFull is ReadAt that accepts io.EOF alongside a complete read, as the
// io.ReaderAt contract allows.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
