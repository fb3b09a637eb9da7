// Package torchsavetest writes small files in torch.save's zip format, so
// that tests of the reader (and of the .ckpt loader) can build exactly the
// archive they need, including broken ones. It is test support: nothing in
// the program writes torch files.
package torchsavetest

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Pickle assembles protocol-2 pickle opcodes.
type Pickle struct{ bytes.Buffer }

// NewPickle starts a pickle with PROTO 2.
func NewPickle() *Pickle {
	p := &Pickle{}
	p.Op(0x80, 2)
	return p
}

// Op appends raw bytes (opcodes and their arguments).
func (p *Pickle) Op(b ...byte) *Pickle { p.Write(b); return p }

// Str appends BINUNICODE.
func (p *Pickle) Str(s string) *Pickle {
	p.Op('X')
	p.u32(uint32(len(s)))
	p.WriteString(s)
	return p
}

// Int appends the shortest of BININT1, BININT2, BININT or LONG1.
func (p *Pickle) Int(n int64) *Pickle {
	switch {
	case n >= 0 && n < 256:
		return p.Op('K', byte(n))
	case n >= 0 && n < 65536:
		return p.Op('M', byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		p.Op('J')
		p.u32(uint32(int32(n)))
		return p
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	p.Op(0x8a, 8)
	p.Write(b[:])
	return p
}

// Float appends BINFLOAT.
func (p *Pickle) Float(f float64) *Pickle {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.Float64bits(f))
	p.Op('G')
	p.Write(b[:])
	return p
}

// Bool appends NEWTRUE or NEWFALSE.
func (p *Pickle) Bool(v bool) *Pickle {
	if v {
		return p.Op(0x88)
	}
	return p.Op(0x89)
}

// Global appends GLOBAL module name.
func (p *Pickle) Global(module, name string) *Pickle {
	p.Op('c')
	p.WriteString(module + "\n" + name + "\n")
	return p
}

// Ints appends a tuple of ints.
func (p *Pickle) Ints(v ...int64) *Pickle {
	p.Op('(')
	for _, n := range v {
		p.Int(n)
	}
	return p.Op('t')
}

// Put appends BINPUT (idx < 256) or LONG_BINPUT.
func (p *Pickle) Put(idx uint32) *Pickle {
	if idx < 256 {
		return p.Op('q', byte(idx))
	}
	p.Op('r')
	p.u32(idx)
	return p
}

// Get appends BINGET or LONG_BINGET.
func (p *Pickle) Get(idx uint32) *Pickle {
	if idx < 256 {
		return p.Op('h', byte(idx))
	}
	p.Op('j')
	p.u32(idx)
	return p
}

// Tensor appends _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()).
// storageClass is e.g. "FloatStorage"; numel counts the storage's elements.
func (p *Pickle) Tensor(storageClass, key, location string, numel, offset int64, size, stride []int64, requiresGrad bool) *Pickle {
	p.Global("torch._utils", "_rebuild_tensor_v2")
	p.Op('(')
	p.Op('(').Str("storage").Global("torch", storageClass).Str(key).Str(location).Int(numel).Op('t')
	p.Op('Q')
	p.Int(offset).Ints(size...).Ints(stride...).Bool(requiresGrad)
	p.Global("collections", "OrderedDict").Op(')', 'R')
	return p.Op('t', 'R')
}

func (p *Pickle) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	p.Write(b[:])
}

// Archive writes a torch-style stored zip: <dir>/data.pkl, <dir>/data/<key>
// for each storage (in key order as strings, as torch does) and
// <dir>/version.
func Archive(dir string, pkl []byte, storages map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if err := add(dir+"/data.pkl", pkl); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(storages))
	for k := range storages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := add(dir+"/data/"+k, storages[k]); err != nil {
			return nil, err
		}
	}
	if err := add(dir+"/version", []byte("3\n")); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Entry is one tensor of a state dict.
type Entry struct {
	Name  string
	DType string // "F32", "F16", "BF16", "F64", "I64", "I32", "U8"
	Shape []int
	Data  []byte // C order, little-endian
}

var storageClass = map[string]string{
	"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage", "F64": "DoubleStorage",
	"I64": "LongStorage", "I32": "IntStorage", "U8": "ByteStorage",
}

var elemSize = map[string]int{"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1}

// StateDict writes entries as an OrderedDict of contiguous tensors, one
// storage each. With nested, the dict sits under "state_dict" next to a
// "global_step", as PyTorch Lightning checkpoints (SD .ckpt files) do.
func StateDict(dir string, entries []Entry, nested bool) ([]byte, error) {
	p := NewPickle()
	if nested {
		p.Op('}').Str("global_step").Int(470000).Op('s').Str("state_dict")
	}
	p.Global("collections", "OrderedDict").Op(')', 'R')
	storages := map[string][]byte{}
	if len(entries) > 0 {
		p.Op('(')
	}
	for i, e := range entries {
		cls, ok := storageClass[e.DType]
		if !ok {
			return nil, fmt.Errorf("torchsavetest: %s: dtype %q", e.Name, e.DType)
		}
		numel := 1
		for _, d := range e.Shape {
			numel *= d
		}
		if numel*elemSize[e.DType] != len(e.Data) {
			return nil, fmt.Errorf("torchsavetest: %s: %d bytes for shape %v of %s", e.Name, len(e.Data), e.Shape, e.DType)
		}
		key := strconv.Itoa(i)
		storages[key] = e.Data
		size := make([]int64, len(e.Shape))
		stride := make([]int64, len(e.Shape))
		st := int64(1)
		for d := len(e.Shape) - 1; d >= 0; d-- {
			size[d] = int64(e.Shape[d])
			stride[d] = st
			st *= int64(e.Shape[d])
		}
		p.Str(e.Name).Tensor(cls, key, "cpu", int64(numel), 0, size, stride, false)
	}
	if len(entries) > 0 {
		p.Op('u')
	}
	if nested {
		p.Op('s')
	}
	p.Op('.')
	return Archive(dir, p.Bytes(), storages)
}
