package plugin

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

// tinyMapper is a small valid mapper concept for format tests and fuzz
// seeds (the real-size ones make fuzzing slow).
func tinyMapper() *Concept {
	c := &Concept{
		Kind: KindNeTI, Token: "<tiny>", SuperCategory: "dog", NormScale: 0.5, BypassAlpha: DefaultBypassAlpha,
		Arch: Arch{TextWidth: 4, Anchors: 2, Layers: 3, InputWidth: 6, Hidden: 5, LNEps: 1e-5, LeakySlope: 0.01, OutputBypass: true},
		Base: BaseModel{TextWidth: 4, TextLayers: 2, VocabSize: 100, Hash: "tiny"},
		Training: Training{Steps: 5, BatchSize: 1, GradAccum: 1, LearningRate: 1e-3, NestedDropoutProb: 0.5,
			NumImages: 3, Seed: -4, Date: "2025-01-01T00:00:00Z", Tool: "test"},
		Metadata: map[string]string{"b": "2", "a": "1"},
	}
	c.Fourier = Fourier{SigmaT: DefaultSigmaT, SigmaL: DefaultSigmaL, NumW: 8, W: make([]float32, 16)}
	for i := range c.Fourier.W {
		c.Fourier.W[i] = float32(math.Cos(float64(7*i))) * []float32{DefaultSigmaT, DefaultSigmaL}[i%2]
	}
	fill := func(shape ...int) Tensor {
		t := Tensor{Shape: shape}
		t.Data = make([]float32, t.Numel())
		for i := range t.Data {
			t.Data[i] = float32(math.Sin(float64(3*i+len(shape)))) * 0.3
		}
		return t
	}
	c.Weights = &MapperWeights{
		InputW: fill(6, 16), InputB: fill(6), Lin1W: fill(5, 6), Lin1B: fill(5),
		LN1W: fill(5), LN1B: fill(5), Lin2W: fill(5, 5), Lin2B: fill(5),
		LN2W: fill(5), LN2B: fill(5), OutW: fill(8, 5), OutB: fill(8),
	}
	return c
}

func embeddingConcept() *Concept {
	e := &Tensor{Shape: []int{2, 4}, Data: []float32{0.1, -0.2, 0.3, 1e-8, -5, 6, 7.5, -0}}
	return &Concept{
		Kind: KindEmbedding, Token: "<emb>", Arch: Arch{TextWidth: 4}, Embedding: e,
		Base:     BaseModel{TextWidth: 4, VocabSize: 1000, Hash: "h"},
		Metadata: map[string]string{"source": "test"},
	}
}

// withOptimizer adds deterministic AdamW state to a mapper concept.
func withOptimizer(c *Concept) *Concept {
	o := &OptimizerState{Step: 123, M: map[string][]float32{}, V: map[string][]float32{}}
	for k, nt := range c.Weights.Named() {
		m := make([]float32, len(nt.Tensor.Data))
		v := make([]float32, len(nt.Tensor.Data))
		for i := range m {
			m[i] = float32(math.Cos(float64(i + k)))
			v[i] = float32(i%7) * 1e-6
		}
		o.M[nt.Name], o.V[nt.Name] = m, v
	}
	c.Optimizer = o
	return c
}

// sameBits reports whether two float32 slices are bit-identical.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestRoundTripFull(t *testing.T) {
	tests := []struct {
		name string
		c    *Concept
	}{
		{"sd-tiny with optimizer", withOptimizer(loadSDTiny(t))},
		{"tiny mapper", tinyMapper()},
		{"embedding", embeddingConcept()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.c, EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Format != FormatName || got.Version != (Version{VersionMajor, VersionMinor}) || got.Compact {
				t.Fatalf("format %q version %v compact %v", got.Format, got.Version, got.Compact)
			}
			// Everything else must come back exactly, floats bit for bit.
			want := *tc.c
			want.Format, want.Version = got.Format, got.Version
			if !sameBits(got.Fourier.W, want.Fourier.W) {
				t.Error("Fourier W differs")
			}
			if want.Weights != nil {
				for _, nt := range want.Weights.Named() {
					g := got.Weights.Get(nt.Name)
					if !reflect.DeepEqual(g.Shape, nt.Tensor.Shape) || !sameBits(g.Data, nt.Tensor.Data) {
						t.Errorf("tensor %s differs", nt.Name)
					}
				}
			}
			if want.Optimizer != nil {
				for _, name := range TensorNames {
					if !sameBits(got.Optimizer.M[name], want.Optimizer.M[name]) || !sameBits(got.Optimizer.V[name], want.Optimizer.V[name]) {
						t.Errorf("optimizer state of %s differs", name)
					}
				}
			}
			if want.Embedding != nil && !sameBits(got.Embedding.Data, want.Embedding.Data) {
				t.Error("embedding differs")
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("decoded concept differs:\n got %+v\nwant %+v", got, &want)
			}
			// Equal concepts give equal bytes.
			b2, err := Encode(got, EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Error("re-encoding the decoded concept changed the bytes")
			}
		})
	}
}

// TestCompactSD1 is the compact-form promise at the real SD 1.x size:
// at most 600,000 bytes, and mapper outputs within 1% relative L2 of full
// precision at NeTI's 50 inference timesteps and at timesteps Encode itself
// never checked, for all 16 layers.
func TestCompactSD1(t *testing.T) {
	full := withOptimizer(synthMapper(1, 768, 0.02))
	b, err := Encode(full, EncodeOptions{Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := full.ParamCount(); n != 563616 {
		t.Fatalf("synthetic mapper has %d values, SD 1.x has 563616", n)
	}
	t.Logf("compact: %d bytes (full precision with optimizer state is about %d)", len(b), 3*4*full.ParamCount())
	if len(b) > 600000 {
		t.Errorf("compact file is %d bytes, more than 600000", len(b))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Compact || got.Optimizer != nil {
		t.Errorf("compact %v, optimizer kept %v", got.Compact, got.Optimizer != nil)
	}
	if !sameBits(got.Fourier.W, full.Fourier.W) {
		t.Error("compact form changed W")
	}
	ts := append(netiTimesteps(), 3, 37, 123, 333, 617, 888, 997)
	ref, cmp := evalGrid(full, ts), evalGrid(got, ts)
	worst := maxRelErr(ref, cmp)
	t.Logf("largest relative L2 error over %d (t, layer): %.3f%%", len(ref), 100*worst)
	if worst > compactMaxErr {
		t.Errorf("compact mapper differs by %.3f%% > 1%%", 100*worst)
	}
	// Encode checks untruncated outputs only; nested-dropout truncation
	// uses a prefix of the same hidden units and must hold up as well.
	for _, k := range []int{1, 16, 64} {
		for _, tv := range []float64{999, 500, 20} {
			for l := 0; l < 16; l++ {
				a, ab := full.Mapper(tv, float64(l), k)
				c, cb := got.Mapper(tv, float64(l), k)
				if e := relErr(append(c, cb...), append(a, ab...)); e > compactMaxErr {
					t.Errorf("truncation %d, t=%v, layer %d: %.3f%%", k, tv, l, 100*e)
				}
			}
		}
	}
	// The public API agrees with the internal evaluation.
	tok, byp := got.Mapper(617, 5, -1)
	ftok, fbyp := full.Mapper(617, 5, -1)
	if e := relErr(append(tok, byp...), append(ftok, fbyp...)); e > compactMaxErr {
		t.Errorf("Mapper(617, 5): %.3f%%", 100*e)
	}
}

func TestCompactSmallModels(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *Concept
	}{{"sd-tiny", loadSDTiny(t)}, {"tiny", tinyMapper()}, {"embedding", embeddingConcept()}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.c, EncodeOptions{Compact: true})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Compact {
				t.Error("compact flag lost")
			}
			if tc.c.Kind == KindEmbedding {
				if !sameBits(got.Embedding.Data, tc.c.Embedding.Data) {
					t.Error("embedding vectors changed")
				}
				return
			}
			ts := []float64{0, 20, 333, 999}
			if e := maxRelErr(evalGrid(tc.c, ts), evalGrid(got, ts)); e > compactMaxErr {
				t.Errorf("error %.3f%%", 100*e)
			}
		})
	}
}

func TestNetiTimesteps(t *testing.T) {
	ts := netiTimesteps()
	if len(ts) != 50 || ts[0] != 999 || ts[1] != 979 || ts[49] != 20 {
		t.Fatalf("schedule %v", ts)
	}
	// numpy's half-to-even rounding of 499.5 gives 500 (neti.md §6.2).
	if ts[25] != 500 || ts[24] != 519 || ts[26] != 480 {
		t.Errorf("middle of schedule: %v", ts[23:28])
	}
}

// assemble builds a file around a payload, with a correct checksum.
// A negative raw means the payload's own length.
func assemble(payload []byte, major, minor int, flags uint32, raw int) []byte {
	if raw < 0 {
		raw = len(payload)
	}
	out := make([]byte, headerSize+len(payload))
	copy(out, magic[:])
	binary.LittleEndian.PutUint16(out[8:], uint16(major))
	binary.LittleEndian.PutUint16(out[10:], uint16(minor))
	binary.LittleEndian.PutUint32(out[12:], flags)
	binary.LittleEndian.PutUint64(out[16:], uint64(len(payload)))
	binary.LittleEndian.PutUint64(out[24:], uint64(raw))
	copy(out[headerSize:], payload)
	s := checksum(out[:32], payload)
	copy(out[32:], s[:])
	return out
}

func wirePayload(t *testing.T, mod func(w *wireConcept)) []byte {
	t.Helper()
	w := toWire(tinyMapper())
	if mod != nil {
		mod(w)
	}
	b, err := marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	good, err := Encode(tinyMapper(), EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	goodCompact, err := Encode(tinyMapper(), EncodeOptions{Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	fixture := func(name string) []byte {
		p, err := fixtures.Path("neti-import", name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		return c
	}
	// A hand-made payload whose first value is an array32 claiming 2^31
	// elements: the pre-scan must refuse it before anything is allocated.
	hostile := []byte{0x81, 0xa6, 't', 'e', 'n', 's', 'o', 'r', 0xdd, 0x80, 0, 0, 0, 0x90}
	tests := []struct {
		name string
		b    []byte
		want error
		msg  string
	}{
		{"random bytes", []byte("hello, this is not a concept file at all, just text......................"), ErrNotConcept, "unknown format"},
		{"torch zip", fixture("a1111-toy.pt"), ErrNotConcept, "neti import"},
		{"safetensors", fixture("learned_embeds.safetensors"), ErrNotConcept, "safetensors"},
		{"json", []byte(`{"a": 1}`), ErrNotConcept, "JSON"},
		{"empty", nil, ErrTruncated, "header"},
		{"magic only", magic[:5], ErrTruncated, "header"},
		{"cut header", good[:40], ErrTruncated, "header"},
		{"cut payload", good[:len(good)/2], ErrTruncated, "payload"},
		{"cut compact payload", goodCompact[:len(goodCompact)-3], ErrTruncated, "payload"},
		{"flipped payload byte", flip(good, len(good)-10), ErrCorrupt, "checksum"},
		{"flipped flags", flip(good, 12), ErrCorrupt, "checksum"},
		{"flipped compact byte", flip(goodCompact, headerSize+20), ErrCorrupt, "checksum"},
		{"trailing bytes", append(append([]byte(nil), good...), 0, 0), ErrCorrupt, "stray"},
		{"future major", assemble(good[headerSize:], 2, 0, 0, len(good)-headerSize), ErrVersion, "version 2.0; this build reads version 1.x"},
		{"version zero", assemble(good[headerSize:], 0, 3, 0, len(good)-headerSize), ErrCorrupt, "0.3"},
		{"unknown flag", assemble(good[headerSize:], 1, 0, 1<<7, len(good)-headerSize), ErrCorrupt, "flags"},
		{"raw length lies", assemble(good[headerSize:], 1, 0, 0, 5), ErrCorrupt, "announced"},
		{"inflate bomb", assemble(goodCompact[headerSize:], 1, 0, flagDeflate|flagCompact, 1<<30), ErrCorrupt, "inflate"},
		{"not deflate", assemble([]byte{0xff, 0xff, 0xff}, 1, 0, flagDeflate, 10), ErrCorrupt, "compressed"},
		{"not msgpack", assemble([]byte{0xc1}, 1, 0, 0, 1), ErrCorrupt, "invalid type"},
		{"hostile length", assemble(hostile, 1, 0, 0, len(hostile)), ErrCorrupt, "exceeds"},
		{"deep nesting", assemble(bytes.Repeat([]byte{0x91}, 1000), 1, 0, 0, 1000), ErrCorrupt, "nesting"},
		{"wrong field type", assemble([]byte{0x81, 0xa5, 't', 'o', 'k', 'e', 'n', 0x05}, 1, 0, 0, 8), ErrCorrupt, "payload"},
		{"other format", assemble(wirePayload(t, func(w *wireConcept) { w.Format = "x" }), 1, 0, 0, -1), ErrCorrupt, "format"},
		{"bad shape", assemble(wirePayload(t, func(w *wireConcept) {
			for i := range w.Tensors {
				if w.Tensors[i].Name == "net.1.weight" {
					w.Tensors[i].Shape = []int{6, 5} // same bytes, wrong orientation
				}
			}
		}), 1, 0, 0, -1), ErrInvalid, "net.1.weight"},
		{"byte count", assemble(wirePayload(t, func(w *wireConcept) { w.Tensors[3].Data = w.Tensors[3].Data[:4] }), 1, 0, 0, -1), ErrCorrupt, "bytes"},
		{"missing tensor", assemble(wirePayload(t, func(w *wireConcept) { w.Tensors = w.Tensors[:5] }), 1, 0, 0, -1), ErrInvalid, "missing"},
		{"NaN", assemble(wirePayload(t, func(w *wireConcept) { copy(w.Tensors[2].Data, float32Bytes([]float32{float32(math.NaN())})) }), 1, 0, 0, -1), ErrInvalid, "NaN"},
		{"unknown kind", assemble(wirePayload(t, func(w *wireConcept) { w.Kind = "lora" }), 1, 0, 0, -1), ErrInvalid, "lora"},
		{"unknown encoding", assemble(wirePayload(t, func(w *wireConcept) { w.Tensors[1].Enc = "bf16" }), 1, 0, 0, -1), ErrCorrupt, "bf16"},
		{"huge shape", assemble(wirePayload(t, func(w *wireConcept) { w.Tensors[1].Shape = []int{1 << 40, 1 << 40} }), 1, 0, 0, -1), ErrInvalid, "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := Decode(b)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("decoded a bad file: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("decoding allocated %d MB", grew>>20)
			}
		})
	}
}

// TestForwardCompatible: a newer minor version with extra fields decodes.
func TestForwardCompatible(t *testing.T) {
	type future struct {
		wireConcept `msgpack:",inline"`
		Extra       []string       `msgpack:"zz_new_field"`
		More        map[string]int `msgpack:"aa_other"`
	}
	w := future{wireConcept: *toWire(tinyMapper()), Extra: []string{"x"}, More: map[string]int{"k": 1}}
	payload, err := marshal(&w)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(assemble(payload, 1, 9, 0, len(payload)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != (Version{1, 9}) || c.Token != tinyMapper().Token {
		t.Errorf("version %v token %q", c.Version, c.Token)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Concept)
		msg  string
	}{
		{"no token", func(c *Concept) { c.Token = " " }, "token"},
		{"negative norm", func(c *Concept) { c.NormScale = -1 }, "norm scale"},
		{"infinite norm", func(c *Concept) { c.NormScale = math.Inf(1) }, "norm scale"},
		{"no kind", func(c *Concept) { c.Kind = "" }, "kind"},
		{"base width", func(c *Concept) { c.Base.TextWidth = 768 }, "base model"},
		{"input width", func(c *Concept) { c.Arch.InputWidth = 7 }, "input width"},
		{"hidden", func(c *Concept) { c.Arch.Hidden = 0 }, "hidden"},
		{"eps", func(c *Concept) { c.Arch.LNEps = 0 }, "eps"},
		{"numW", func(c *Concept) { c.Fourier.NumW = 9 }, "Fourier"},
		{"W NaN", func(c *Concept) { c.Fourier.W[3] = float32(math.NaN()) }, "Fourier matrix"},
		{"weight Inf", func(c *Concept) { c.Weights.OutB.Data[0] = float32(math.Inf(-1)) }, "output_layer.0.bias"},
		{"shape", func(c *Concept) { c.Weights.OutW.Shape = []int{5, 8} }, "output_layer.0.weight"},
		{"data length", func(c *Concept) { c.Weights.LN1W.Data = c.Weights.LN1W.Data[:2] }, "net.2.weight"},
		{"bypass flag", func(c *Concept) { c.Arch.OutputBypass = false }, "output_layer.0.weight"},
		{"both kinds", func(c *Concept) { c.Embedding = &Tensor{Shape: []int{1, 4}, Data: make([]float32, 4)} }, "embedding"},
		{"optimizer missing", func(c *Concept) { withOptimizer(c); delete(c.Optimizer.V, "net.1.bias") }, "net.1.bias"},
		{"optimizer length", func(c *Concept) { withOptimizer(c); c.Optimizer.M["net.1.bias"] = nil }, "net.1.bias"},
		{"optimizer extra", func(c *Concept) { withOptimizer(c); c.Optimizer.M["x"] = nil }, "unknown tensor"},
		{"embedding width", func(c *Concept) {
			*c = *embeddingConcept()
			c.Embedding.Shape = []int{4, 2}
		}, "embedding shape"},
		{"embedding missing", func(c *Concept) { *c = *embeddingConcept(); c.Embedding = nil }, "no vectors"},
	}
	if err := tinyMapper().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyMapper()
			tc.mod(c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an ErrInvalid mentioning %q", err, tc.msg)
			}
			if _, err := Encode(c, EncodeOptions{}); err == nil {
				t.Error("Encode accepted an invalid concept")
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cat.neti")
	first := tinyMapper()
	if err := Write(path, first, EncodeOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(got.Weights.OutW.Data, first.Weights.OutW.Data) {
		t.Error("read back different weights")
	}
	// A failed save must leave the previous file as it was, and no debris.
	bad := tinyMapper()
	bad.Weights.LN2B.Data[0] = float32(math.NaN())
	if err := Write(path, bad, EncodeOptions{}); err == nil {
		t.Fatal("wrote an invalid concept")
	}
	if _, err := Read(path); err != nil {
		t.Fatalf("previous file damaged: %v", err)
	}
	second := embeddingConcept()
	if err := Write(path, second, EncodeOptions{Compact: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path); err != nil || got.Kind != KindEmbedding || !got.Compact {
		t.Fatalf("overwrite: %v %+v", err, got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after saving, want only the concept", len(entries))
	}
	if err := Write(filepath.Join(dir, "missing", "x.neti"), first, EncodeOptions{}); err == nil {
		t.Error("wrote into a folder that does not exist")
	}
	if _, err := Read(filepath.Join(dir, "nope.neti")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	st, err := fixtures.Path("sd-tiny", "neti", "mapper.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Read(st); !errors.Is(err, ErrNotConcept) || !strings.Contains(err.Error(), "neti import") {
		t.Errorf("reading a safetensors file: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []*Concept{tinyMapper(), withOptimizer(tinyMapper()), embeddingConcept()} {
		for _, compact := range []bool{false, true} {
			b, err := Encode(c, EncodeOptions{Compact: compact})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(magic[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid concept: %v", err)
		}
		// Whatever decodes must survive a full-precision round trip.
		b2, err := Encode(c, EncodeOptions{})
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := Decode(b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if c.Kind == KindNeTI {
			c.Mapper(500, 1, -1)
		}
	})
}

// FuzzPayload mutates the msgpack payload behind a valid header and
// checksum, which FuzzDecode's mutations almost never get past.
func FuzzPayload(f *testing.F) {
	for _, c := range []*Concept{tinyMapper(), withOptimizer(tinyMapper()), embeddingConcept()} {
		for _, compact := range []bool{false, true} {
			b, err := Encode(c, EncodeOptions{Compact: compact})
			if err != nil {
				f.Fatal(err)
			}
			payload := b[headerSize:]
			if compact {
				if payload, err = inflate(payload, binary.LittleEndian.Uint64(b[24:])); err != nil {
					f.Fatal(err)
				}
			}
			f.Add(payload, compact)
		}
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, payload []byte, compact bool) {
		var flags uint32
		stored := payload
		if compact {
			flags = flagDeflate | flagCompact
			var buf bytes.Buffer
			zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
			zw.Write(payload)
			zw.Close()
			stored = buf.Bytes()
		}
		c, err := Decode(assemble(stored, 1, 0, flags, len(payload)))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid concept: %v", err)
		}
		if c.Kind == KindNeTI {
			if tok, _ := c.Mapper(999, 2, 3); tok == nil {
				t.Fatal("valid mapper concept gave no output")
			}
		}
	})
}
