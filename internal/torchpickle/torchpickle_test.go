package torchpickle_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/torchpickle"
	"github.com/neti-project/neti/internal/torchpickle/torchsavetest"
)

const netiClass = "models.positional_encoding.NeTIPositionalEncoding"

func importPath(t testing.TB, name string) string {
	t.Helper()
	p, err := fixtures.Path("neti-import", name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type expectedJSON struct {
	NeTI struct {
		StateDictKeys  map[string][]int `json:"state_dict_keys"`
		StateDictShare [][2]string      `json:"state_dict_shared"`
		Encoder        struct {
			Attributes struct {
				SigmaT float64 `json:"sigma_t"`
				SigmaL float64 `json:"sigma_l"`
				NumW   int64   `json:"num_w"`
			} `json:"attributes"`
		} `json:"encoder"`
		LearnedEmbed struct {
			Values []float64 `json:"values"`
		} `json:"learned_embed"`
		Cfg         any `json:"cfg"`
		MapperFiles map[string]struct {
			StorageLocation string `json:"storage_location"`
		} `json:"mapper_files"`
	} `json:"neti"`
	TI map[string]struct {
		Key          string                 `json:"key"`
		ParamKey     string                 `json:"param_key"`
		Shape        []int                  `json:"shape"`
		Location     string                 `json:"storage_location"`
		RequiresGrad bool                   `json:"requires_grad"`
		Vectors      [][]float64            `json:"vectors"`
		StringToTok  map[string]json.Number `json:"string_to_token"`
		Step         int64                  `json:"step"`
		Name         string                 `json:"name"`
	} `json:"textual_inversion"`
	Negative map[string]struct {
		PickleGlobals []string `json:"pickle_globals"`
	} `json:"negative"`
}

func loadExpected(t *testing.T) *expectedJSON {
	t.Helper()
	b, err := os.ReadFile(importPath(t, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedJSON
	if err := json.Unmarshal(fixtures.PythonJSON(b), &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func asMap(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want a dict", what, v)
	}
	return m
}

func asTensor(t *testing.T, v any, what string) *torchpickle.Tensor {
	t.Helper()
	x, ok := v.(*torchpickle.Tensor)
	if !ok {
		t.Fatalf("%s is %T, want a tensor", what, v)
	}
	return x
}

// checkVectors compares bit for bit: the fixture's float64 values are
// exact widenings of the stored float32.
func checkVectors(t *testing.T, tn *torchpickle.Tensor, want [][]float64, what string) {
	t.Helper()
	got, err := tn.Float32()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var flat []float64
	for _, row := range want {
		flat = append(flat, row...)
	}
	if len(got) != len(flat) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(flat))
	}
	for i := range got {
		if got[i] != float32(flat[i]) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], flat[i])
		}
	}
}

func TestTextualInversionFiles(t *testing.T) {
	e := loadExpected(t)
	tests := []struct {
		file string
		key  func(m map[string]any) any
	}{
		{"a1111-toy.pt", func(m map[string]any) any { return m["string_to_param"].(map[string]any)["*"] }},
		{"learned_embeds.bin", func(m map[string]any) any { return m["<toy2>"] }},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			want, ok := e.TI[tc.file]
			if !ok {
				t.Fatalf("expected.json has no entry for %s", tc.file)
			}
			v, err := torchpickle.Load(importPath(t, tc.file), torchpickle.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := asMap(t, v, "top level")
			tn := asTensor(t, tc.key(m), "embedding")
			if !reflect.DeepEqual(tn.Shape, want.Shape) || tn.DType != "F32" {
				t.Errorf("tensor %s %v, want F32 %v", tn.DType, tn.Shape, want.Shape)
			}
			if tn.Location != want.Location {
				t.Errorf("location %q, want %q", tn.Location, want.Location)
			}
			if tn.RequiresGrad != want.RequiresGrad {
				t.Errorf("requires_grad %v, want %v", tn.RequiresGrad, want.RequiresGrad)
			}
			checkVectors(t, tn, want.Vectors, tc.file)
			if tc.file == "a1111-toy.pt" {
				if m["name"] != want.Name || m["step"] != want.Step || m["sd_checkpoint"] != "abcd1234" {
					t.Errorf("name/step/sd_checkpoint = %v/%v/%v", m["name"], m["step"], m["sd_checkpoint"])
				}
				tok := asMap(t, m["string_to_token"], "string_to_token")
				if wantTok, _ := want.StringToTok["*"].Int64(); tok["*"] != wantTok {
					t.Errorf("string_to_token[*] = %v, want %d", tok["*"], wantTok)
				}
			}
		})
	}
}

func TestLearnedEmbedsNeTI(t *testing.T) {
	e := loadExpected(t)
	v, err := torchpickle.Load(importPath(t, "learned_embeds-steps-10.bin"), torchpickle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := asMap(t, v, "top level")
	if len(m) != 1 {
		t.Errorf("%d keys, want 1", len(m))
	}
	tn := asTensor(t, m["<toy>"], "<toy>")
	if !reflect.DeepEqual(tn.Shape, []int{32}) || tn.Location != "cpu" {
		t.Errorf("shape %v location %q", tn.Shape, tn.Location)
	}
	checkVectors(t, tn, [][]float64{e.NeTI.LearnedEmbed.Values}, "<toy>")
}

// normalise round-trips through JSON so int64/float64 from the pickle
// compare equal to encoding/json's float64.
func normalise(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMapperCheckpoint(t *testing.T) {
	e := loadExpected(t)
	wantW, wShape, err := fixtures.ReadFloats(importPath(t, "expected_mapper.safetensors"), "W")
	if err != nil {
		t.Fatal(err)
	}
	var plain map[string]*torchpickle.Tensor
	for _, file := range []string{"mapper-steps-10.pt", "mapper-steps-10-cudatag.pt"} {
		for _, lazy := range []bool{false, true} {
			name := file
			if lazy {
				name += "/lazy"
			}
			t.Run(name, func(t *testing.T) {
				f, err := os.Open(importPath(t, file))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				st, _ := f.Stat()
				v, err := torchpickle.LoadReader(f, st.Size(), torchpickle.Options{AllowClasses: []string{netiClass}, Lazy: lazy})
				if err != nil {
					t.Fatal(err)
				}
				top := asMap(t, v, "top level")
				if len(top) != 3 {
					t.Errorf("top-level keys %d, want 3 (state_dict, cfg, encoder)", len(top))
				}
				sd := asMap(t, top["state_dict"], "state_dict")
				if len(sd) != len(e.NeTI.StateDictKeys) {
					t.Errorf("state_dict has %d keys, want %d", len(sd), len(e.NeTI.StateDictKeys))
				}
				raw := map[string][]byte{}
				for k, shape := range e.NeTI.StateDictKeys {
					tn := asTensor(t, sd[k], k)
					if !reflect.DeepEqual(tn.Shape, shape) || tn.DType != "F32" {
						t.Errorf("%s: %s %v, want F32 %v", k, tn.DType, tn.Shape, shape)
					}
					if tn.Location != e.NeTI.MapperFiles[file].StorageLocation {
						t.Errorf("%s: location %q, want %q", k, tn.Location, e.NeTI.MapperFiles[file].StorageLocation)
					}
					if (tn.Raw == nil) != lazy {
						t.Errorf("%s: Raw nil = %v with Lazy %v", k, tn.Raw == nil, lazy)
					}
					b := make([]byte, tn.NBytes())
					if err := tn.ReadRaw(b); err != nil {
						t.Fatal(err)
					}
					raw[k] = b
				}
				for _, pair := range e.NeTI.StateDictShare {
					if !bytes.Equal(raw[pair[0]], raw[pair[1]]) {
						t.Errorf("%s and %s share a storage but differ", pair[0], pair[1])
					}
				}
				if !reflect.DeepEqual(normalise(t, top["cfg"]), e.NeTI.Cfg) {
					t.Errorf("cfg differs from expected.json:\n got %v\nwant %v", normalise(t, top["cfg"]), e.NeTI.Cfg)
				}
				enc, ok := top["encoder"].(*torchpickle.Object)
				if !ok || enc.Class != netiClass {
					t.Fatalf("encoder is %#v, want an Object of %s", top["encoder"], netiClass)
				}
				state := asMap(t, enc.State, "encoder state")
				attr := e.NeTI.Encoder.Attributes
				if state["sigma_t"] != attr.SigmaT || state["sigma_l"] != attr.SigmaL || state["num_w"] != attr.NumW || state["training"] != true {
					t.Errorf("encoder sigma_t/sigma_l/num_w/training = %v/%v/%v/%v", state["sigma_t"], state["sigma_l"], state["num_w"], state["training"])
				}
				if set, ok := state["_non_persistent_buffers_set"].([]any); !ok || len(set) != 0 {
					t.Errorf("_non_persistent_buffers_set = %#v, want an empty set", state["_non_persistent_buffers_set"])
				}
				w := asTensor(t, state["w"], "encoder.w")
				if !reflect.DeepEqual(w.Shape, wShape) || !w.RequiresGrad {
					t.Errorf("encoder.w shape %v requires_grad %v, want %v true", w.Shape, w.RequiresGrad, wShape)
				}
				got, err := w.Float32()
				if err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(wantW[i]) {
						t.Fatalf("encoder.w[%d] = %v, want %v (bit-exact)", i, got[i], wantW[i])
					}
				}
				// Both files hold the same numbers whatever the device tag.
				if plain == nil {
					plain = map[string]*torchpickle.Tensor{}
					for k := range sd {
						plain[k] = sd[k].(*torchpickle.Tensor)
					}
					return
				}
				for k, p := range plain {
					b := make([]byte, p.NBytes())
					if err := p.ReadRaw(b); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(b, raw[k]) {
						t.Errorf("%s differs between %s and the first load", k, file)
					}
				}
			})
		}
	}
}

func TestRefusals(t *testing.T) {
	e := loadExpected(t)
	tests := []struct {
		file, opts string
		want       []string
	}{
		{"bad-evil.pt", "", append([]string{"GLOBAL at byte", "not on the allow-list"}, e.Negative["bad-evil.pt"].PickleGlobals...)},
		{"bad-evil.pt", "neti", []string{"posix.system"}},
		{"bad-truncated.pt", "", []string{"bad-truncated.pt", "truncated"}},
		{"mapper-steps-10.pt", "", []string{netiClass, "allow-list"}},
		{"learned_embeds.safetensors", "", []string{"not a complete torch zip"}},
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.opts, func(t *testing.T) {
			var opts torchpickle.Options
			if tc.opts == "neti" {
				opts.AllowClasses = []string{netiClass}
			}
			v, err := torchpickle.Load(importPath(t, tc.file), opts)
			if err == nil {
				t.Fatalf("loaded %v, want an error", v)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := torchpickle.Load(importPath(t, "a1111-toy.pt"), torchpickle.Options{Lazy: true}); err == nil {
		t.Error("Load with Lazy: want an error (the file would be closed)")
	}
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func mustArchive(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	t.Helper()
	b, err := torchsavetest.Archive("archive", pkl, storages)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadBytes(b []byte, opts torchpickle.Options) (any, error) {
	return torchpickle.LoadReader(bytes.NewReader(b), int64(len(b)), opts)
}

// tensorPickle is {"t": tensor} over storage "0".
func tensorPickle(class string, numel, offset int64, size, stride []int64) []byte {
	p := torchsavetest.NewPickle().Op('}').Str("t")
	p.Tensor(class, "0", "cpu", numel, offset, size, stride, false)
	return p.Op('s', '.').Bytes()
}

func TestStridedViews(t *testing.T) {
	six := f32bytes(0, 1, 2, 3, 4, 5)
	tests := []struct {
		name         string
		numel, off   int64
		size, stride []int64
		want         []float32
	}{
		{"contiguous", 6, 0, []int64{2, 3}, []int64{3, 1}, []float32{0, 1, 2, 3, 4, 5}},
		{"transpose", 6, 0, []int64{3, 2}, []int64{1, 3}, []float32{0, 3, 1, 4, 2, 5}},
		{"slice with offset", 6, 2, []int64{2}, []int64{1}, []float32{2, 3}},
		{"column", 6, 1, []int64{2}, []int64{3}, []float32{1, 4}},
		{"scalar", 6, 5, nil, nil, []float32{5}},
		{"unit dim any stride", 6, 4, []int64{1, 2}, []int64{99, 1}, []float32{4, 5}},
		{"empty", 6, 0, []int64{0, 3}, []int64{3, 1}, []float32{}},
	}
	for _, tc := range tests {
		for _, lazy := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				arc := mustArchive(t, tensorPickle("FloatStorage", tc.numel, tc.off, tc.size, tc.stride), map[string][]byte{"0": six})
				v, err := loadBytes(arc, torchpickle.Options{Lazy: lazy})
				if err != nil {
					t.Fatal(err)
				}
				tn := asTensor(t, asMap(t, v, "top")["t"], "t")
				got, err := tn.Float32()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("lazy=%v: got %v, want %v", lazy, got, tc.want)
				}
			})
		}
	}
}

func TestDTypes(t *testing.T) {
	tests := []struct {
		class, dtype string
		data         []byte
		want         []float32 // nil: Float32 must fail
	}{
		{"HalfStorage", "F16", []byte{0x00, 0x3c, 0x00, 0xc0}, []float32{1, -2}},
		{"BFloat16Storage", "BF16", []byte{0x80, 0x3f, 0x40, 0x40}, []float32{1, 3}},
		{"DoubleStorage", "F64", append(binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.5)), binary.LittleEndian.AppendUint64(nil, math.Float64bits(-4))...), []float32{0.5, -4}},
		{"LongStorage", "I64", make([]byte, 16), nil},
		{"IntStorage", "I32", make([]byte, 8), nil},
		{"ByteStorage", "U8", []byte{1, 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.dtype, func(t *testing.T) {
			arc := mustArchive(t, tensorPickle(tc.class, 2, 0, []int64{2}, []int64{1}), map[string][]byte{"0": tc.data})
			v, err := loadBytes(arc, torchpickle.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tn := asTensor(t, asMap(t, v, "top")["t"], "t")
			if tn.DType != tc.dtype || !bytes.Equal(tn.Raw, tc.data) {
				t.Errorf("dtype %s raw %v, want %s %v", tn.DType, tn.Raw, tc.dtype, tc.data)
			}
			got, err := tn.Float32()
			if tc.want == nil {
				if err == nil {
					t.Errorf("Float32 of %s succeeded, want an error", tc.dtype)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Float32 = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	p := torchsavetest.NewPickle().Op('}', 'q', 0, '(')
	p.Str("neg").Int(-5)
	p.Str("big").Int(1 << 40)
	p.Str("bigneg").Op(0x8a, 2, 0x00, 0x80) // LONG1 -32768
	p.Str("f").Float(-1.5)
	p.Str("none").Op('N')
	p.Str("list").Op(']', '(').Int(1).Int(2).Op('e')
	p.Str("tuple").Op('(').Int(1).Str("a").Op('t')
	p.Str("bytes").Op('C', 2, 'h', 'i')
	p.Str("intkeys").Op('}').Int(3).Str("three").Op('s')
	p.Str("tuplekey").Op('}').Int(1).Int(2).Op(0x86).Bool(true).Op('s')
	p.Op('u')
	p.Op('(').Str("junk").Int(1).Op('1') // POP_MARK drops everything since its MARK
	p.Op('2', '0')                       // DUP, POP
	p.Op('(').Str("memo2").Op('}').Op('u')
	p.Op('.')
	v, err := loadBytes(mustArchive(t, p.Bytes(), nil), torchpickle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"neg": int64(-5), "big": int64(1 << 40), "bigneg": int64(-32768), "f": -1.5, "none": nil,
		"list": []any{int64(1), int64(2)}, "tuple": []any{int64(1), "a"}, "bytes": []byte("hi"),
		"intkeys": map[string]any{"3": "three"}, "tuplekey": map[string]any{"(1, 2)": true},
		"memo2": map[string]any{},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got  %#v\nwant %#v", v, want)
	}
}

func TestObjectsAndParameters(t *testing.T) {
	p := torchsavetest.NewPickle().Op('}')
	p.Str("obj").Global("pkg.mod", "Thing").Op(')', 0x81).Op('}').Str("a").Int(1).Op('s', 'b', 's')
	p.Str("call").Global("pkg.mod", "Thing").Int(7).Op(0x85, 'R', 's')
	p.Str("param").Global("torch._utils", "_rebuild_parameter").Op('(')
	p.Tensor("FloatStorage", "0", "cuda:1", 1, 0, []int64{1}, []int64{1}, false)
	p.Bool(true).Global("collections", "OrderedDict").Op(')', 'R', 't', 'R', 's')
	p.Str("set").Global("builtins", "set").Op(']', 0x85, 'R', 's')
	p.Str("od").Global("collections", "OrderedDict").Op(']').Str("k").Int(1).Op(0x86, 'a', 0x85, 'R', 's')
	p.Op('.')
	arc := mustArchive(t, p.Bytes(), map[string][]byte{"0": f32bytes(2)})
	if _, err := loadBytes(arc, torchpickle.Options{}); err == nil || !strings.Contains(err.Error(), "pkg.mod.Thing") {
		t.Fatalf("without AllowClasses: err %v, want one naming pkg.mod.Thing", err)
	}
	v, err := loadBytes(arc, torchpickle.Options{AllowClasses: []string{"pkg.mod.Thing"}})
	if err != nil {
		t.Fatal(err)
	}
	m := asMap(t, v, "top")
	if o, ok := m["obj"].(*torchpickle.Object); !ok || o.Class != "pkg.mod.Thing" || !reflect.DeepEqual(o.State, map[string]any{"a": int64(1)}) {
		t.Errorf("obj = %#v", m["obj"])
	}
	if o, ok := m["call"].(*torchpickle.Object); !ok || !reflect.DeepEqual(o.Args, []any{int64(7)}) || o.State != nil {
		t.Errorf("call = %#v", m["call"])
	}
	if tn := asTensor(t, m["param"], "param"); !tn.RequiresGrad || tn.Location != "cuda:1" {
		t.Errorf("param requires_grad %v location %q", tn.RequiresGrad, tn.Location)
	}
	if !reflect.DeepEqual(m["set"], []any{}) || !reflect.DeepEqual(m["od"], map[string]any{"k": int64(1)}) {
		t.Errorf("set = %#v, od = %#v", m["set"], m["od"])
	}
}

func TestMalformed(t *testing.T) {
	four := f32bytes(1, 2, 3, 4)
	rec := torchsavetest.NewPickle().Op(']', 'q', 0, 'h', 0, 'a', '.').Bytes()
	deep := torchsavetest.NewPickle()
	for range 1100 {
		deep.Op(']')
	}
	for range 1099 {
		deep.Op('a')
	}
	deep.Op('.')
	compressed := func() []byte {
		var buf bytes.Buffer
		b, _ := torchsavetest.Archive("x", torchsavetest.NewPickle().Op('N', '.').Bytes(), nil)
		buf.Write(b)
		// Flip the method of every record to deflate (8): the reader must
		// refuse rather than inflate.
		out := buf.Bytes()
		for _, sig := range [][]byte{{'P', 'K', 3, 4}, {'P', 'K', 1, 2}} {
			for i := 0; ; {
				j := bytes.Index(out[i:], sig)
				if j < 0 {
					break
				}
				at := i + j + 8
				if sig[2] == 1 {
					at = i + j + 10
				}
				out[at] = 8
				i += j + 4
			}
		}
		return out
	}()
	tests := []struct {
		name string
		arc  []byte
		want string
	}{
		{"numel beyond entry", mustArchive(t, tensorPickle("FloatStorage", 5, 0, []int64{5}, []int64{1}), map[string][]byte{"0": four}), "zip entry holds 16 bytes"},
		{"view beyond storage", mustArchive(t, tensorPickle("FloatStorage", 4, 2, []int64{3}, []int64{1}), map[string][]byte{"0": four}), "runs past"},
		{"stride beyond storage", mustArchive(t, tensorPickle("FloatStorage", 4, 0, []int64{2}, []int64{4}), map[string][]byte{"0": four}), "does not fit"},
		{"broadcast", mustArchive(t, tensorPickle("FloatStorage", 4, 0, []int64{8}, []int64{0}), map[string][]byte{"0": four}), "more elements"},
		{"offset beyond storage", mustArchive(t, tensorPickle("FloatStorage", 4, 9, []int64{0}, []int64{1}), map[string][]byte{"0": four}), "storage offset"},
		{"missing storage", mustArchive(t, tensorPickle("FloatStorage", 4, 0, []int64{4}, []int64{1}), nil), "missing"},
		{"recursive", mustArchive(t, rec, nil), "recursive"},
		{"too deep", mustArchive(t, deep.Bytes(), nil), "deeper"},
		{"no STOP", mustArchive(t, torchsavetest.NewPickle().Op('N').Bytes(), nil), "truncated"},
		{"string past end", mustArchive(t, torchsavetest.NewPickle().Op('X', 0xff, 0xff, 0xff, 0x7f, 'a').Bytes(), nil), "past the end"},
		{"stack underflow", mustArchive(t, torchsavetest.NewPickle().Op('s', '.').Bytes(), nil), "underflow"},
		{"unknown memo", mustArchive(t, torchsavetest.NewPickle().Op('h', 9, '.').Bytes(), nil), "never stored"},
		{"text opcode", mustArchive(t, torchsavetest.NewPickle().Op('I', '1', '\n', '.').Bytes(), nil), "not supported"},
		{"stack global", mustArchive(t, torchsavetest.NewPickle().Str("os").Str("system").Op(0x93, '.').Bytes(), nil), "os.system"},
		{"huge long", mustArchive(t, torchsavetest.NewPickle().Op(0x8a, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1, '.').Bytes(), nil), "int64"},
		{"call storage", mustArchive(t, torchsavetest.NewPickle().Global("torch", "FloatStorage").Op(')', 'R', '.').Bytes(), nil), "cannot be called"},
		{"legacy", append([]byte{0x80, 0x02, 0x8a, 0x0a}, make([]byte, 40)...), "legacy"},
		{"empty", nil, "not a complete"},
		{"compressed", compressed, "compressed"},
		{"no data.pkl", func() []byte {
			b, _ := torchsavetest.Archive("x", nil, nil)
			return bytes.Replace(b, []byte("x/data.pkl"), []byte("x/data.pkz"), -1)
		}(), "no data.pkl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := loadBytes(tc.arc, torchpickle.Options{})
			if err == nil {
				t.Fatalf("loaded %#v, want an error mentioning %q", v, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestTruncatedEveryLength(t *testing.T) {
	// Every prefix of a valid file must fail cleanly (never panic or hang).
	b, err := os.ReadFile(importPath(t, "learned_embeds.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n++ {
		if _, err := loadBytes(b[:n], torchpickle.Options{}); err == nil {
			t.Fatalf("prefix of %d/%d bytes loaded without error", n, len(b))
		}
	}
}

func FuzzLoadReader(f *testing.F) {
	dir := filepath.Dir(importPath(f, "x"))
	pts, _ := filepath.Glob(filepath.Join(dir, "*.pt"))
	bins, _ := filepath.Glob(filepath.Join(dir, "*.bin"))
	for _, p := range append(pts, bins...) {
		if b, err := os.ReadFile(p); err == nil && len(b) < 1<<16 {
			f.Add(b)
		}
	}
	f.Add(mustArchive(f, tensorPickle("FloatStorage", 6, 0, []int64{3, 2}, []int64{1, 3}), map[string][]byte{"0": f32bytes(0, 1, 2, 3, 4, 5)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, lazy := range []bool{false, true} {
			v, err := loadBytes(b, torchpickle.Options{Lazy: lazy, AllowClasses: []string{netiClass}})
			if err == nil {
				walk(t, v, 0)
			}
		}
	})
}

// FuzzPickle fuzzes data.pkl alone inside a valid archive with one storage,
// which reaches the opcode machine far more often than mutating zip bytes.
func FuzzPickle(f *testing.F) {
	f.Add(tensorPickle("FloatStorage", 6, 1, []int64{2, 2}, []int64{1, 2}))
	f.Add(torchsavetest.NewPickle().Op(']', 'q', 0, 'h', 0, 'a', '.').Bytes())
	for _, name := range []string{"a1111-toy.pt", "mapper-steps-10.pt"} {
		zr, err := zip.OpenReader(importPath(f, name))
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			if strings.HasSuffix(zf.Name, "/data.pkl") {
				r, err := zf.Open()
				if err != nil {
					f.Fatal(err)
				}
				b, err := io.ReadAll(r)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
		zr.Close()
	}
	storage := f32bytes(0, 1, 2, 3, 4, 5)
	f.Fuzz(func(t *testing.T, pkl []byte) {
		arc := mustArchive(t, pkl, map[string][]byte{"0": storage, "1": storage[:8]})
		for _, lazy := range []bool{false, true} {
			v, err := loadBytes(arc, torchpickle.Options{Lazy: lazy, AllowClasses: []string{netiClass}})
			if err == nil {
				walk(t, v, 0)
			}
		}
	})
}

// walk visits a loaded tree the way a consumer would; it must terminate and
// every tensor must be readable.
func walk(t *testing.T, v any, depth int) {
	if depth > 2000 {
		t.Fatal("tree deeper than the reader's own limit")
	}
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			walk(t, e, depth+1)
		}
	case []any:
		for _, e := range x {
			walk(t, e, depth+1)
		}
	case *torchpickle.Object:
		walk(t, x.Args, depth+1)
		walk(t, x.State, depth+1)
	case *torchpickle.Tensor:
		b := make([]byte, x.NBytes())
		if err := x.ReadRaw(b); err != nil {
			t.Fatalf("loaded tensor unreadable: %v", err)
		}
		_, _ = x.Float32()
	}
}
