// Package safetensors reads and writes the safetensors tensor file format
// (8-byte little-endian header length, JSON header, raw little-endian data).
//
// The header is bounded and validated before any data is touched, so a
// corrupt or truncated file gives an error that names the file and the
// tensor, never a panic or an unbounded allocation.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// MaxHeaderSize bounds the JSON header; real SD checkpoints stay far below it.
const MaxHeaderSize = 100 << 20

// DType is a safetensors element type name ("F32", "F16", ...).
type DType string

// Element types this package understands.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	F64  DType = "F64"
	U8   DType = "U8"
)

// Size returns the byte size of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case I64, F64:
		return 8
	case U8:
		return 1
	}
	return 0
}

// TensorInfo describes one tensor in a file. Offset is absolute in the file.
type TensorInfo struct {
	Name   string
	DType  DType
	Shape  []int
	Offset int64
	Size   int64
}

// Numel is the number of elements.
func (t TensorInfo) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file. Tensors are read on demand.
type File struct {
	path     string
	f        *os.File
	tensors  map[string]TensorInfo
	names    []string
	Metadata map[string]string
}

// Open reads and validates the header of the file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	sf, err := parse(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.f = f
	return sf, nil
}

// ParseHeader validates a header read from r, where size is the total file
// size. It is exported for fuzzing and for callers that hold bytes in memory.
func ParseHeader(r io.ReaderAt, size int64) (map[string]TensorInfo, error) {
	sf, err := parse(r, size, "<memory>")
	if err != nil {
		return nil, err
	}
	return sf.tensors, nil
}

func parse(r io.ReaderAt, size int64, path string) (*File, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("safetensors: %s: file is %d bytes, too short for a header (truncated?)", path, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: read header length: %w", path, err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: %s: header claims %d bytes, more than the %d allowed (not a safetensors file?)", path, hlen, MaxHeaderSize)
	}
	if int64(hlen) > size-8 {
		return nil, fmt.Errorf("safetensors: %s: header claims %d bytes but the file has only %d after the length (truncated)", path, hlen, size-8)
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %s: read header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("safetensors: %s: header is not valid JSON: %w", path, err)
	}
	dataStart := int64(8 + hlen)
	dataLen := size - dataStart
	sf := &File{path: path, tensors: map[string]TensorInfo{}}
	type entry struct {
		DType   DType    `json:"dtype"`
		Shape   []int64  `json:"shape"`
		Offsets []uint64 `json:"data_offsets"`
	}
	for name, msg := range raw {
		if name == "__metadata__" {
			md := map[string]string{}
			if err := json.Unmarshal(msg, &md); err != nil {
				return nil, fmt.Errorf("safetensors: %s: __metadata__ must map strings to strings: %w", path, err)
			}
			sf.Metadata = md
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: bad header entry: %w", path, name, err)
		}
		es := e.DType.Size()
		if es == 0 {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: unsupported dtype %q (supported: F32, F16, BF16, F64, I64, I32, U8)", path, name, e.DType)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] > e.Offsets[1] {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: bad data_offsets %v", path, name, e.Offsets)
		}
		numel := uint64(1)
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			if d < 0 || d > math.MaxInt32 {
				return nil, fmt.Errorf("safetensors: %s: tensor %q: bad dimension %d in shape %v", path, name, d, e.Shape)
			}
			shape[i] = int(d)
			if d != 0 && numel > math.MaxInt64/uint64(d)/8 {
				return nil, fmt.Errorf("safetensors: %s: tensor %q: shape %v is too large", path, name, e.Shape)
			}
			numel *= uint64(d)
		}
		nbytes := e.Offsets[1] - e.Offsets[0]
		if numel*uint64(es) != nbytes {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: shape %v of %s needs %d bytes but data_offsets span %d", path, name, e.Shape, e.DType, numel*uint64(es), nbytes)
		}
		if e.Offsets[1] > uint64(dataLen) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: data ends at byte %d but the file has only %d data bytes (truncated)", path, name, e.Offsets[1], dataLen)
		}
		sf.tensors[name] = TensorInfo{Name: name, DType: e.DType, Shape: shape, Offset: dataStart + int64(e.Offsets[0]), Size: int64(nbytes)}
		sf.names = append(sf.names, name)
	}
	sort.Strings(sf.names)
	return sf, nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Close closes the file.
func (f *File) Close() error {
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}

// Names lists the tensor names, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info returns a tensor's description. The shape is a copy, so callers may
// keep or modify it without affecting the file.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	t.Shape = append(t.Shape[:0:0], t.Shape...)
	return t, ok
}

// ReadRaw reads a tensor's bytes into dst, which must be exactly its size.
func (f *File) ReadRaw(name string, dst []byte) error {
	t, ok := f.tensors[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	if int64(len(dst)) != t.Size {
		return fmt.Errorf("safetensors: %s: tensor %q: buffer of %d bytes for %d", f.path, name, len(dst), t.Size)
	}
	if f.f == nil {
		return fmt.Errorf("safetensors: %s: file is closed", f.path)
	}
	if _, err := f.f.ReadAt(dst, t.Offset); err != nil {
		return fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	return nil
}

// Float32 reads a floating-point tensor converted to float32.
func (f *File) Float32(name string) ([]float32, []int, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	raw := make([]byte, t.Size)
	if err := f.ReadRaw(name, raw); err != nil {
		return nil, nil, err
	}
	out, err := ToFloat32(t.DType, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
	}
	return out, append(t.Shape[:0:0], t.Shape...), nil
}

// Int64 reads an integer tensor (I64 or I32) as int64.
func (f *File) Int64(name string) ([]int64, []int, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	raw := make([]byte, t.Size)
	if err := f.ReadRaw(name, raw); err != nil {
		return nil, nil, err
	}
	n := t.Numel()
	out := make([]int64, n)
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	default:
		return nil, nil, fmt.Errorf("safetensors: %s: tensor %q is %s, not an integer type", f.path, name, t.DType)
	}
	return out, append(t.Shape[:0:0], t.Shape...), nil
}

// ToFloat32 converts little-endian raw data of a float dtype to float32.
func ToFloat32(dt DType, raw []byte) ([]float32, error) {
	es := dt.Size()
	if es == 0 || len(raw)%es != 0 {
		return nil, fmt.Errorf("bad data for dtype %q", dt)
	}
	n := len(raw) / es
	out := make([]float32, n)
	switch dt {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = HalfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not a float type", dt)
	}
	return out, nil
}

// HalfToFloat converts an IEEE 754 binary16 value to float32.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// FloatToHalf converts float32 to binary16 with round-to-nearest-even.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff { // inf or nan
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is the correct rounding
	}
	return sign | uint16(half)
}

// Tensor is a tensor to write.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// F32Tensor makes a Tensor from float32 values.
func F32Tensor(shape []int, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// Write writes tensors to path atomically (temp file + rename), with names
// sorted so the same tensors always give the same bytes.
func Write(path string, tensors map[string]Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off uint64
	for _, n := range names {
		t := tensors[n]
		numel := 1
		for _, d := range t.Shape {
			numel *= d
		}
		if t.DType.Size() == 0 || numel*t.DType.Size() != len(t.Data) {
			return fmt.Errorf("safetensors: write %s: tensor %q: %d bytes do not fit shape %v of %s", path, n, len(t.Data), t.Shape, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[n] = map[string]any{"dtype": t.DType, "shape": shape, "data_offsets": []uint64{off, off + uint64(len(t.Data))}}
		off += uint64(len(t.Data))
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	for len(hj)%8 != 0 { // align data to 8 bytes, as the reference writer does
		hj = append(hj, ' ')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(hj)))
	werr := errors.Join(write(tmp, lb[:]), write(tmp, hj))
	for _, n := range names {
		werr = errors.Join(werr, write(tmp, tensors[n].Data))
	}
	werr = errors.Join(werr, tmp.Sync(), tmp.Close())
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: write %s: %w", path, werr)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}

func write(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}
