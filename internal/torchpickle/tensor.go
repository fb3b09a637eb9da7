package torchpickle

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// maxDims bounds a tensor's rank; torch itself stops at 64.
const maxDims = 64

// Tensor is a tensor rebuilt from torch._utils._rebuild_tensor_v2.
type Tensor struct {
	DType    string // "F32", "F16", "BF16", "F64", "I64", "I32", "U8"
	Shape    []int
	Location string // the device tag it was saved from ("cpu", "cuda:0"); the bytes do not depend on it
	// Raw holds the elements in C order, little-endian, after storage
	// offset and strides were applied. Tensors that view the same storage
	// contiguously share these bytes, so treat Raw as read-only. Nil when
	// loaded with Options.Lazy (use ReadRaw).
	Raw          []byte
	RequiresGrad bool

	// Lazy source: the storage's bytes start at base in src.
	src    io.ReaderAt
	base   int64
	offset int64   // storage_offset, in elements
	stride []int64 // in elements
}

// Numel is the number of elements.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// NBytes is the size of the tensor's data in C order.
func (t *Tensor) NBytes() int64 { return int64(t.Numel()) * int64(elemSize(t.DType)) }

// ReadRaw fills dst (exactly NBytes long) with the tensor's bytes, reading
// from the archive when the tensor was loaded lazily.
func (t *Tensor) ReadRaw(dst []byte) error {
	if int64(len(dst)) != t.NBytes() {
		return fmt.Errorf("torchpickle: tensor %s %v: buffer of %d bytes for %d", t.DType, t.Shape, len(dst), t.NBytes())
	}
	if t.Raw != nil || len(dst) == 0 {
		copy(dst, t.Raw)
		return nil
	}
	if t.src == nil {
		return fmt.Errorf("torchpickle: tensor %s %v has no data", t.DType, t.Shape)
	}
	es := int64(elemSize(t.DType))
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	if contiguous(shape, t.stride) {
		if err := readFull(t.src, dst, t.base+t.offset*es); err != nil {
			return fmt.Errorf("torchpickle: read tensor %s %v: %w", t.DType, t.Shape, err)
		}
		return nil
	}
	// Read the span the view touches (bounded by its storage), then gather.
	last := t.offset
	for i, d := range shape {
		last += (d - 1) * t.stride[i]
	}
	span := make([]byte, (last-t.offset+1)*es)
	if err := readFull(t.src, span, t.base+t.offset*es); err != nil {
		return fmt.Errorf("torchpickle: read tensor %s %v: %w", t.DType, t.Shape, err)
	}
	gather(dst, span, 0, shape, t.stride, es)
	return nil
}

// Float32 returns the elements of a floating-point tensor as float32.
func (t *Tensor) Float32() ([]float32, error) {
	raw := t.Raw
	if raw == nil {
		raw = make([]byte, t.NBytes())
		if err := t.ReadRaw(raw); err != nil {
			return nil, err
		}
	}
	out := make([]float32, t.Numel())
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return nil, fmt.Errorf("torchpickle: tensor %v is %s, not a floating-point type", t.Shape, t.DType)
	}
	return out, nil
}

func elemSize(dtype string) int {
	switch dtype {
	case "F32", "I32":
		return 4
	case "F16", "BF16":
		return 2
	case "F64", "I64":
		return 8
	case "U8":
		return 1
	}
	return 0
}

// halfToFloat widens IEEE binary16; it is exact.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal: mant·2^-24 is exact in float32.
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

func (u *unpickler) rebuildTensor(args []any) (*Tensor, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("expected (storage, offset, size, stride, requires_grad, hooks[, metadata]), got %d arguments", len(args))
	}
	st, ok := args[0].(*pStorage)
	if !ok {
		return nil, fmt.Errorf("first argument is %s, not a storage", typeName(args[0]))
	}
	offset, ok := args[1].(int64)
	if !ok || offset < 0 || offset > st.numel {
		return nil, fmt.Errorf("storage offset %v is not within the %d-element storage %q", args[1], st.numel, st.key)
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", shape, stride)
	}
	rg, ok := args[4].(bool)
	if !ok {
		return nil, fmt.Errorf("requires_grad is %s, not a bool", typeName(args[4]))
	}
	// Count elements without overflow: a view can never hold more elements
	// than its storage (stride-0 broadcasts are not state-dict material),
	// which is what keeps the materialised tensors bounded by the file.
	numel := int64(1)
	for _, d := range shape {
		if d == 0 {
			numel = 0
			break
		}
		if numel > st.numel/d {
			return nil, fmt.Errorf("size %v holds more elements than the %d of storage %q", shape, st.numel, st.key)
		}
		numel *= d
	}
	if numel > 0 {
		last := offset
		for i, d := range shape {
			if d == 1 {
				continue
			}
			if stride[i] == 0 || (d-1) > (st.numel-1)/stride[i] {
				return nil, fmt.Errorf("size %v with stride %v does not fit the %d-element storage %q", shape, stride, st.numel, st.key)
			}
			last += (d - 1) * stride[i]
		}
		if last >= st.numel {
			return nil, fmt.Errorf("size %v with stride %v at offset %d runs past the %d-element storage %q", shape, stride, offset, st.numel, st.key)
		}
	}
	t := &Tensor{DType: st.dtype, Location: st.location, RequiresGrad: rg, Shape: make([]int, len(shape))}
	for i, d := range shape {
		t.Shape[i] = int(d)
	}
	es := int64(elemSize(st.dtype))
	if u.lazy {
		t.src, t.base, t.offset, t.stride = u.arc.r, st.entry.off, offset, stride
		return t, nil
	}
	switch {
	case numel == 0:
		t.Raw = []byte{}
	case contiguous(shape, stride):
		t.Raw = st.entry.data[offset*es : (offset+numel)*es : (offset+numel)*es]
	default:
		u.copied += numel * es
		if u.copied > u.copyLimit {
			return nil, fmt.Errorf("strided tensors would copy more than %d bytes, far beyond the file size", u.copyLimit)
		}
		t.Raw = make([]byte, numel*es)
		gather(t.Raw, st.entry.data, offset, shape, stride, es)
	}
	return t, nil
}

func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(*pTuple)
	if !ok {
		return nil, fmt.Errorf("%s is %s, not a tuple", what, typeName(v))
	}
	if len(t.items) > maxDims {
		return nil, fmt.Errorf("%s has %d dimensions, more than %d", what, len(t.items), maxDims)
	}
	out := make([]int64, len(t.items))
	for i, it := range t.items {
		n, ok := it.(int64)
		if !ok || n < 0 || n > math.MaxInt32 {
			return nil, fmt.Errorf("%s[%d] is %v, not a dimension", what, i, it)
		}
		out[i] = n
	}
	return out, nil
}

// contiguous reports whether stride is the C-order stride of shape (sizes of
// 1 may carry any stride).
func contiguous(shape, stride []int64) bool {
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// gather copies the strided view (offset, shape, stride; all in elements)
// of src into dst in C order. The caller has checked the view fits src.
func gather(dst, src []byte, offset int64, shape, stride []int64, es int64) {
	n := len(shape)
	if n == 0 {
		copy(dst, src[offset*es:(offset+1)*es])
		return
	}
	for _, d := range shape {
		if d == 0 {
			return
		}
	}
	idx := make([]int64, n-1)
	inner, istride := shape[n-1], stride[n-1]
	var w int64
	for {
		base := offset
		for d, i := range idx {
			base += i * stride[d]
		}
		if istride == 1 {
			w += int64(copy(dst[w:], src[base*es:(base+inner)*es]))
		} else {
			for k := int64(0); k < inner; k++ {
				p := (base + k*istride) * es
				w += int64(copy(dst[w:w+es], src[p:p+es]))
			}
		}
		d := n - 2
		for ; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}
