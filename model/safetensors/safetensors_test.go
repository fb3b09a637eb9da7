package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func le16(v ...uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

func le64(v ...int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

func sampleTensors() map[string]Tensor {
	f64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.25))
	binary.LittleEndian.PutUint64(f64[8:], math.Float64bits(-3))
	i32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(i32, uint32(0xfffffffe)) // -2
	binary.LittleEndian.PutUint32(i32[4:], 7)
	return map[string]Tensor{
		"f32":    F32Tensor([]int{2, 3}, []float32{1, 2, 3, 4, 5, -6}),
		"f16":    {DType: F16, Shape: []int{2}, Data: le16(0x3c00, 0xc000)},  // 1, -2
		"bf16":   {DType: BF16, Shape: []int{2}, Data: le16(0x3f80, 0x4040)}, // 1, 3
		"f64":    {DType: F64, Shape: []int{2}, Data: f64},
		"i64":    {DType: I64, Shape: []int{1, 2}, Data: le64(-5, 1<<40)},
		"i32":    {DType: I32, Shape: []int{2}, Data: i32},
		"u8":     {DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}},
		"scalar": F32Tensor(nil, []float32{9}),
		"empty":  {DType: F32, Shape: []int{0, 3}, Data: []byte{}},
	}
}

func TestWriteOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.safetensors")
	tensors := sampleTensors()
	md := map[string]string{"format": "pt"}
	if err := Write(path, tensors, md); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if err := Write(filepath.Join(dir, "b.safetensors"), tensors, md); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, "b.safetensors"))
	if !bytes.Equal(first, second) {
		t.Error("writing the same tensors twice gave different bytes")
	}
	if hlen := binary.LittleEndian.Uint64(first); hlen%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hlen)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.Metadata, md) || f.Path() != path {
		t.Errorf("metadata %v path %s", f.Metadata, f.Path())
	}
	if want := []string{"bf16", "empty", "f16", "f32", "f64", "i32", "i64", "scalar", "u8"}; !reflect.DeepEqual(f.Names(), want) {
		t.Errorf("names %v", f.Names())
	}
	for name, want := range tensors {
		info, ok := f.Info(name)
		wantShape := want.Shape
		if wantShape == nil {
			wantShape = []int{}
		}
		if !ok || info.DType != want.DType || !reflect.DeepEqual(info.Shape, wantShape) || info.Size != int64(len(want.Data)) {
			t.Errorf("%s: info %+v", name, info)
		}
		raw := make([]byte, info.Size)
		if err := f.ReadRaw(name, raw); err != nil || !bytes.Equal(raw, want.Data) {
			t.Errorf("%s: ReadRaw %v", name, err)
		}
	}
	floats := map[string][]float32{"f32": {1, 2, 3, 4, 5, -6}, "f16": {1, -2}, "bf16": {1, 3}, "f64": {0.25, -3}, "scalar": {9}, "empty": {}}
	for name, want := range floats {
		got, shape, err := f.Float32(name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Float32(%s) = %v %v, %v; want %v", name, got, shape, err, want)
		}
	}
	ints := map[string][]int64{"i64": {-5, 1 << 40}, "i32": {-2, 7}}
	for name, want := range ints {
		if got, _, err := f.Int64(name); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Int64(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	// Misuse gives errors naming the file and tensor.
	for _, err := range []error{
		f.ReadRaw("f32", make([]byte, 3)),
		f.ReadRaw("nope", nil),
		func() error { _, _, err := f.Float32("i64"); return err }(),
		func() error { _, _, err := f.Float32("u8"); return err }(),
		func() error { _, _, err := f.Int64("f32"); return err }(),
		func() error { _, _, err := f.Int64("nope"); return err }(),
		func() error { _, _, err := f.Float32("nope"); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("misuse: error %v does not name the file", err)
		}
	}
	f.Close()
	if err := f.ReadRaw("u8", make([]byte, 3)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read after close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := Write(filepath.Join(dir, "bad.safetensors"), map[string]Tensor{"x": {DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, nil); err == nil {
		t.Error("Write with a short buffer succeeded")
	}
	if err := Write(filepath.Join(dir, "bad.safetensors"), map[string]Tensor{"x": {DType: "Q4", Shape: []int{1}, Data: make([]byte, 1)}}, nil); err == nil {
		t.Error("Write with an unknown dtype succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.safetensors")); err == nil {
		t.Error("a failed Write left a file behind")
	}
}

// file assembles a safetensors image from a header string and data.
func file(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestParseErrors(t *testing.T) {
	claim := func(n uint64, rest []byte) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, n)
		return append(b, rest...)
	}
	four := make([]byte, 4)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"short length", []byte{1, 0, 0}, "too short"},
		{"header past end", claim(100, []byte(`{}`)), "truncated"},
		{"oversized header", claim(MaxHeaderSize+1, nil), "more than the"},
		{"huge header", claim(math.MaxUint64, nil), "more than the"},
		{"not json", file(`{"a": `, nil), "not valid JSON"},
		{"json array", file(`[1, 2]`, nil), "not valid JSON"},
		{"unsupported dtype", file(`{"a": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}`, four), `unsupported dtype "I8"`},
		{"bool dtype", file(`{"a": {"dtype": "BOOL", "shape": [4], "data_offsets": [0, 4]}}`, four), "unsupported dtype"},
		{"data past end", file(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}`, four), "truncated"},
		{"size mismatch", file(`{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}`, four), "needs 8 bytes"},
		{"reversed offsets", file(`{"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}`, four), "bad data_offsets"},
		{"three offsets", file(`{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4, 4]}}`, four), "bad data_offsets"},
		{"negative offset", file(`{"a": {"dtype": "U8", "shape": [4], "data_offsets": [-4, 0]}}`, four), `tensor "a"`},
		{"negative dim", file(`{"a": {"dtype": "U8", "shape": [-4], "data_offsets": [0, 4]}}`, four), "bad dimension"},
		{"huge dim", file(`{"a": {"dtype": "U8", "shape": [4294967296], "data_offsets": [0, 4]}}`, four), "bad dimension"},
		{"overflowing shape", file(`{"a": {"dtype": "F64", "shape": [2147483647, 2147483647, 2147483647], "data_offsets": [0, 4]}}`, four), "too large"},
		{"bad metadata", file(`{"__metadata__": {"n": 1}}`, nil), "__metadata__"},
		{"entry not object", file(`{"a": 5}`, nil), "bad header entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseHeader(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err == nil {
				t.Fatalf("parsed %v, want an error mentioning %q", m, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestOpenNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := Write(path, sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	// Every strict prefix of a valid file is refused: the last tensor's
	// data always ends at the last byte.
	for n := 0; n < len(b); n++ {
		if _, err := ParseHeader(bytes.NewReader(b[:n]), int64(n)); err == nil {
			t.Fatalf("prefix of %d/%d bytes parsed", n, len(b))
		}
	}
	trunc := filepath.Join(dir, "t.safetensors")
	if err := os.WriteFile(trunc, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(trunc); err == nil || !strings.Contains(err.Error(), trunc) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Open(truncated) = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("Open(absent) = %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open(directory) succeeded")
	}
}

func TestHalfConversion(t *testing.T) {
	// Every non-NaN half survives the round trip exactly.
	for h := range 1 << 16 {
		f := HalfToFloat(uint16(h))
		if math.IsNaN(float64(f)) {
			if g := FloatToHalf(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x is not a NaN", h, g)
			}
			continue
		}
		if g := FloatToHalf(f); g != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, g)
		}
	}
	tests := []struct {
		f    float32
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00},             // tie rounds to even (down)
		{1 + 3.0/2048, 0x3c02},             // tie rounds to even (up)
		{1 + 1.0/2048 + 1.0/65536, 0x3c01}, // above the tie
		{65504, 0x7bff},
		{65519, 0x7bff},
		{65520, 0x7c00}, // rounds up into infinity
		{float32(math.Inf(-1)), 0xfc00},
		{float32(math.Ldexp(1, -24)), 0x0001},
		{float32(math.Ldexp(1, -25)), 0x0000},    // tie to even: zero
		{float32(math.Ldexp(1.5, -25)), 0x0001},  // above the tie
		{float32(math.Ldexp(1023, -24)), 0x03ff}, // largest subnormal
		{float32(math.Ldexp(2047, -25)), 0x0400}, // rounds into the normals
		{float32(math.Copysign(0, -1)), 0x8000},
		{-2, 0xc000},
	}
	for _, tc := range tests {
		if got := FloatToHalf(tc.f); got != tc.want {
			t.Errorf("FloatToHalf(%v) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
	if _, err := ToFloat32(F16, []byte{1}); err == nil {
		t.Error("odd-length F16 data converted")
	}
	if _, err := ToFloat32(I32, make([]byte, 4)); err == nil {
		t.Error("I32 converted as float")
	}
}

func FuzzParseHeader(f *testing.F) {
	var buf bytes.Buffer
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.safetensors")
	if err := Write(p, sampleTensors(), map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	buf.Write(file(`{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}`, make([]byte, 4)))
	f.Add(buf.Bytes())
	f.Add(file(`{"__metadata__": {"format": "pt"}}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for name, ti := range m {
			if ti.Offset < 8 || ti.Offset+ti.Size > int64(len(b)) {
				t.Fatalf("%s: [%d, %d) outside the %d-byte input", name, ti.Offset, ti.Offset+ti.Size, len(b))
			}
			if int64(ti.Numel())*int64(ti.DType.Size()) != ti.Size {
				t.Fatalf("%s: size %d for shape %v of %s", name, ti.Size, ti.Shape, ti.DType)
			}
		}
	})
}
