package importer

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/torchpickle/torchsavetest"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/plugin"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := fixtures.Path("neti-import", name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type expectedJSON struct {
	NeTI struct {
		Placeholder   string  `json:"placeholder_token"`
		SuperCategory string  `json:"super_category_token"`
		NormScale     float64 `json:"norm_scale"`
		OutputDim     int     `json:"output_dim"`
		Anchors       int     `json:"num_pe_time_anchors"`
		NumW          int     `json:"pe_num_w"`
		NestedProb    float64 `json:"nested_dropout_prob"`
		Cfg           struct {
			Model struct {
				Pretrained string `json:"pretrained_model_name_or_path"`
			} `json:"model"`
			Optim struct {
				BatchSize int     `json:"train_batch_size"`
				GradAccum int     `json:"gradient_accumulation_steps"`
				LR        float64 `json:"learning_rate"`
			} `json:"optim"`
		} `json:"cfg"`
	} `json:"neti"`
	TI map[string]struct {
		Format  string      `json:"format"`
		Trigger string      `json:"trigger_word"`
		Shape   []int       `json:"shape"`
		Vectors [][]float64 `json:"vectors"`
		Step    int         `json:"step"`
	} `json:"textual_inversion"`
	Target struct {
		Width int `json:"text_hidden_size"`
	} `json:"target_model"`
}

func loadExpected(t *testing.T) *expectedJSON {
	t.Helper()
	b, err := os.ReadFile(fixture(t, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectedJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// TestImportNeTI imports the official checkpoint (both storage tags) and
// checks the mapper against the reference outputs on the whole grid.
func TestImportNeTI(t *testing.T) {
	exp := loadExpected(t)
	ref, err := safetensors.Open(fixture(t, "expected_mapper.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	read := func(name string) []float32 {
		v, _, err := ref.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ts, _, err := ref.Int64("timesteps")
	if err != nil {
		t.Fatal(err)
	}
	ls, _, err := ref.Int64("unet_layers")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"mapper-steps-10.pt", "mapper-steps-10-cudatag.pt"} {
		t.Run(file, func(t *testing.T) {
			c, err := Import(fixture(t, file), Options{Embeds: fixture(t, "learned_embeds-steps-10.bin"), TextWidth: exp.Target.Width})
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != plugin.KindNeTI || c.Token != exp.NeTI.Placeholder || c.SuperCategory != exp.NeTI.SuperCategory {
				t.Errorf("kind %q token %q super %q", c.Kind, c.Token, c.SuperCategory)
			}
			if float32(c.NormScale) != read("norm_scale")[0] || c.NormScale != exp.NeTI.NormScale {
				t.Errorf("norm scale %v, want %v", c.NormScale, exp.NeTI.NormScale)
			}
			w := read("W")
			if len(w) != len(c.Fourier.W) || c.Fourier.NumW != exp.NeTI.NumW {
				t.Fatalf("W has %d values, num_w %d", len(c.Fourier.W), c.Fourier.NumW)
			}
			for i := range w {
				if math.Float32bits(w[i]) != math.Float32bits(c.Fourier.W[i]) {
					t.Fatalf("W[%d] = %v, want %v (bit-exact)", i, c.Fourier.W[i], w[i])
				}
			}
			a := c.Arch
			if a.TextWidth != exp.NeTI.OutputDim || a.Anchors != exp.NeTI.Anchors || a.Layers != 16 || a.Hidden != 128 || !a.OutputBypass {
				t.Errorf("arch %+v", a)
			}
			if c.BypassAlpha != 0.2 || c.Fourier.SigmaT != 0.03 || c.Fourier.SigmaL != 2 {
				t.Errorf("alpha %v sigmas %v %v", c.BypassAlpha, c.Fourier.SigmaT, c.Fourier.SigmaL)
			}
			tr := c.Training
			o := exp.NeTI.Cfg.Optim
			if tr.Steps != 10 || tr.BatchSize != o.BatchSize || tr.GradAccum != o.GradAccum || tr.LearningRate != o.LR || tr.NestedDropoutProb != exp.NeTI.NestedProb {
				t.Errorf("training %+v", tr)
			}
			if c.Metadata["pretrained_model"] != exp.NeTI.Cfg.Model.Pretrained || c.Metadata["source_format"] != FormatNeTI {
				t.Errorf("metadata %v", c.Metadata)
			}
			d := 2 * a.TextWidth
			for _, out := range []struct {
				key   string
				trunc int
			}{{"output", -1}, {"output_trunc4", 4}, {"output_trunc16", 16}} {
				want := read(out.key)
				for r := range ts {
					tok, byp := c.Mapper(float64(ts[r]), float64(ls[r]), out.trunc)
					got := append(tok, byp...)
					row := want[r*d : (r+1)*d]
					for j := range row {
						if math.Abs(float64(got[j]-row[j])) > 1e-6 {
							t.Fatalf("%s row %d (t=%d, layer=%d) [%d]: %v, want %v", out.key, r, ts[r], ls[r], j, got[j], row[j])
						}
					}
					if e := relErr(got, row); e > 1e-5 {
						t.Errorf("%s row %d: relative error %.3g", out.key, r, e)
					}
				}
			}
			// The imported concept survives the file format.
			b, err := plugin.Encode(c, plugin.EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := plugin.Decode(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestImportEmbeddings(t *testing.T) {
	exp := loadExpected(t)
	names := make([]string, 0, len(exp.TI))
	for n := range exp.TI {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) != 5 {
		t.Fatalf("expected.json lists %d embeddings", len(names))
	}
	for _, name := range names {
		want := exp.TI[name]
		t.Run(name, func(t *testing.T) {
			c, err := Import(fixture(t, name), Options{TextWidth: exp.Target.Width})
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != plugin.KindEmbedding || c.Token != want.Trigger {
				t.Errorf("kind %q token %q, want %q", c.Kind, c.Token, want.Trigger)
			}
			rows := len(want.Vectors)
			if c.Embedding.Shape[0] != rows || c.Embedding.Shape[1] != exp.Target.Width {
				t.Fatalf("shape %v, want [%d %d]", c.Embedding.Shape, rows, exp.Target.Width)
			}
			for r, vec := range want.Vectors {
				for j, v := range vec {
					if got := c.Embedding.Data[r*len(vec)+j]; got != float32(v) {
						t.Fatalf("vector %d [%d] = %v, want %v (bit-exact)", r, j, got, float32(v))
					}
				}
			}
			if want.Format == "a1111" && (c.Training.Steps != want.Step || c.Metadata["a1111_name"] == "") {
				t.Errorf("a1111 metadata: steps %d, %v", c.Training.Steps, c.Metadata)
			}
			if c.Base.TextWidth != exp.Target.Width {
				t.Errorf("base width %d", c.Base.TextWidth)
			}
		})
	}
}

func TestImportRefuses(t *testing.T) {
	exp := loadExpected(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	concept, err := plugin.Encode(&plugin.Concept{Kind: plugin.KindEmbedding, Token: "x", Arch: plugin.Arch{TextWidth: 2},
		Embedding: &plugin.Tensor{Shape: []int{1, 2}, Data: []float32{1, 2}}}, plugin.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	multi := filepath.Join(dir, "multi.safetensors")
	sdxl := filepath.Join(dir, "sdxl.safetensors")
	for p, names := range map[string][]string{multi: {"a", "b"}, sdxl: {"clip_l", "clip_g"}} {
		ts := map[string]safetensors.Tensor{}
		for _, n := range names {
			ts[n] = safetensors.F32Tensor([]int{1, 32}, make([]float32, 32))
		}
		if err := safetensors.Write(p, ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		src  string
		opts Options
		msg  []string
	}{
		{"evil pickle", fixture(t, "bad-evil.pt"), Options{}, []string{"posix.system", "allow-list"}},
		{"truncated", fixture(t, "bad-truncated.pt"), Options{}, []string{"truncated"}},
		{"wrong width", fixture(t, "bad-wrongwidth.safetensors"), Options{TextWidth: exp.Target.Width}, []string{"48", "32"}},
		{"mapper for another width", fixture(t, "mapper-steps-10.pt"), Options{TextWidth: 768}, []string{"32", "768"}},
		{"embeds of another concept", fixture(t, "mapper-steps-10.pt"), Options{Embeds: fixture(t, "learned_embeds.bin")}, []string{"<toy2>", "<toy>"}},
		{"embeds with an embedding", fixture(t, "a1111-toy.pt"), Options{Embeds: fixture(t, "learned_embeds-steps-10.bin")}, []string{"NeTI mapper"}},
		{"missing embeds file", fixture(t, "mapper-steps-10.pt"), Options{Embeds: filepath.Join(dir, "nope.bin")}, []string{"nope.bin"}},
		{"base width", fixture(t, "learned_embeds.safetensors"), Options{Base: plugin.BaseModel{TextWidth: 768}}, []string{"768"}},
		{"missing file", filepath.Join(dir, "absent.pt"), Options{}, []string{"absent.pt"}},
		{"legacy pickle", write("old.pt", []byte{0x80, 0x02, '}', '.'}), Options{}, []string{"legacy"}},
		{"neti file", write("c.neti", concept), Options{}, []string{"already a neti concept"}},
		{"text", write("notes.txt", []byte("just some text, nothing else")), Options{}, []string{"unrecognised"}},
		{"several tensors", multi, Options{}, []string{"a b"}},
		{"sdxl", sdxl, Options{}, []string{"SDXL"}},
		{"mapper safetensors", func() string {
			p, _ := fixtures.Path("sd-tiny", "neti", "mapper.safetensors")
			return p
		}(), Options{}, []string{"mapper-*.pt"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Import(tc.src, tc.opts)
			if err == nil {
				t.Fatalf("imported %+v", c)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

// The cases below build torch files with torchsavetest for variants the
// fixture set does not include.

// emit writes a plain Python value (dicts with sorted keys).
func emit(p *torchsavetest.Pickle, v any) {
	switch x := v.(type) {
	case map[string]any:
		p.Op('}')
		if len(x) == 0 {
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		p.Op('(')
		for _, k := range keys {
			p.Str(k)
			emit(p, x[k])
		}
		p.Op('u')
	case string:
		p.Str(x)
	case float64:
		p.Float(x)
	case int:
		p.Int(int64(x))
	case bool:
		p.Bool(x)
	case nil:
		p.Op('N')
	default:
		panic("emit: unsupported value")
	}
}

type tensorSpec struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// tensorDict writes the tensors as an OrderedDict of _rebuild_tensor_v2.
func tensorDict(p *torchsavetest.Pickle, storages map[string][]byte, ts []tensorSpec) {
	p.Global("collections", "OrderedDict").Op(')', 'R').Op('(')
	for _, ts := range ts {
		tensor(p, storages, ts)
	}
	p.Op('u')
}

func tensor(p *torchsavetest.Pickle, storages map[string][]byte, ts tensorSpec) {
	key := strconv.Itoa(len(storages))
	storages[key] = ts.data
	size := make([]int64, len(ts.shape))
	stride := make([]int64, len(ts.shape))
	n := int64(1)
	for d := len(ts.shape) - 1; d >= 0; d-- {
		size[d], stride[d] = int64(ts.shape[d]), n
		n *= int64(ts.shape[d])
	}
	cls := map[string]string{"F32": "FloatStorage", "F16": "HalfStorage"}[ts.dtype]
	p.Str(ts.name).Tensor(cls, key, "cpu", n, 0, size, stride, false)
}

func f32Bytes(v []float32) []byte { return safetensors.F32Tensor([]int{len(v)}, v).Data }

// sdTinyCheckpoint writes a NeTI-style checkpoint from the sd-tiny mapper
// (W in state_dict, as a CPU run writes it) with the given cfg.model
// overrides; drop lists state_dict keys to leave out.
func sdTinyCheckpoint(t *testing.T, dir string, model map[string]any, drop ...string) string {
	t.Helper()
	p, err := fixtures.Path("sd-tiny", "neti", "mapper.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var specs []tensorSpec
	names := append(f.Names(), "net.0.weight", "net.0.bias")
	for _, n := range names {
		if contains(drop, n) {
			continue
		}
		src := n
		if strings.HasPrefix(n, "net.0.") {
			src = "input_layer." + strings.TrimPrefix(n, "net.0.")
		}
		v, shape, err := f.Float32(src)
		if err != nil {
			t.Fatal(err)
		}
		if contains(drop, "tamper:"+n) {
			v[0] += 1
		}
		specs = append(specs, tensorSpec{n, "F32", shape, f32Bytes(v)})
	}
	m := map[string]any{
		"target_norm": 0.0974821001291275, "pe_sigmas": map[string]any{"sigma_t": 0.03, "sigma_l": 2.0},
		"num_pe_time_anchors": 10, "output_bypass": true, "use_nested_dropout": true,
		"nested_dropout_prob": 0.5, "use_positional_encoding": true, "normalize_mapper_output": true,
	}
	for k, v := range model {
		m[k] = v
	}
	cfg := map[string]any{
		"model": m,
		"data":  map[string]any{"placeholder_token": "<concept>", "super_category_token": "cat"},
		"optim": map[string]any{"train_batch_size": 2, "gradient_accumulation_steps": 4, "learning_rate": 0.001, "max_train_steps": 1000, "seed": nil},
	}
	pk := torchsavetest.NewPickle()
	storages := map[string][]byte{}
	pk.Op('}', '(').Str("cfg")
	emit(pk, cfg)
	pk.Str("state_dict")
	tensorDict(pk, storages, specs)
	pk.Op('u', '.')
	b, err := torchsavetest.Archive("mapper-final", pk.Bytes(), storages)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mapper-final.pt")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestImportNeTIVariants: W in state_dict, target_norm null, and the
// checkpoints an importer must refuse.
func TestImportNeTIVariants(t *testing.T) {
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := m.Case("neti_mapper")
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := cs.OutputTensor("output")
	if err != nil {
		t.Fatal(err)
	}
	var ts, ls []float64
	if err := cs.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	if err := cs.Input("unet_layers", &ls); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	c, err := Import(sdTinyCheckpoint(t, dir, nil), Options{TextWidth: 32})
	if err != nil {
		t.Fatal(err)
	}
	if c.Training.Steps != 1000 || c.Token != "<concept>" {
		t.Errorf("steps %d token %q", c.Training.Steps, c.Token)
	}
	for i := range ts {
		tok, byp := c.Mapper(ts[i], ls[i], -1)
		if e := relErr(append(tok, byp...), want[i*64:(i+1)*64]); e > 1e-5 {
			t.Fatalf("row %d: relative error %.3g", i, e)
		}
	}

	c, err = Import(sdTinyCheckpoint(t, dir, map[string]any{"target_norm": nil}), Options{Token: "<mine>"})
	if err != nil {
		t.Fatal(err)
	}
	if c.NormScale != 0 || c.Token != "<mine>" {
		t.Errorf("norm scale %v token %q", c.NormScale, c.Token)
	}

	for _, tc := range []struct {
		name  string
		model map[string]any
		drop  []string
		msg   string
	}{
		{"no W", nil, []string{"encoder.w"}, "Fourier matrix"},
		{"no tensor", nil, []string{"net.4.weight"}, "net.4.weight"},
		{"net.0 differs", nil, []string{"tamper:net.0.weight"}, "net.0.weight differs"},
		{"basic encoder", map[string]any{"use_positional_encoding": false}, nil, "BasicEncoder"},
		{"anchors", map[string]any{"num_pe_time_anchors": 5}, nil, "input_layer.weight"},
		{"bad cfg type", map[string]any{"output_bypass": "yes"}, nil, "output_bypass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(sdTinyCheckpoint(t, t.TempDir(), tc.model, tc.drop...), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestImportTorchVariants(t *testing.T) {
	dir := t.TempDir()
	vec := make([]float32, 3*32)
	half := make([]byte, 2*len(vec))
	for i := range vec {
		vec[i] = float32(i%7) / 8
		h := safetensors.FloatToHalf(vec[i])
		half[2*i], half[2*i+1] = byte(h), byte(h>>8)
	}
	build := func(name string, body func(p *torchsavetest.Pickle, st map[string][]byte)) string {
		p := torchsavetest.NewPickle()
		st := map[string][]byte{}
		body(p, st)
		p.Op('.')
		b, err := torchsavetest.Archive(strings.TrimSuffix(name, ".pt"), p.Bytes(), st)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bare := build("bare-tensor.pt", func(p *torchsavetest.Pickle, st map[string][]byte) {
		st["0"] = f32Bytes(vec)
		p.Tensor("FloatStorage", "0", "cpu", 96, 0, []int64{3, 32}, []int64{32, 1}, false)
	})
	a1111Half := build("half.pt", func(p *torchsavetest.Pickle, st map[string][]byte) {
		p.Op('}', '(').Str("name").Str("half").Str("string_to_param").Op('}', '(')
		tensor(p, st, tensorSpec{"*", "F16", []int{3, 32}, half})
		p.Op('u', 'u')
	})
	// The original textual_inversion code: string_to_param is a pickled
	// nn.ParameterDict whose entries sit in _parameters as Parameters.
	paramDict := build("paramdict.pt", func(p *torchsavetest.Pickle, st map[string][]byte) {
		p.Op('}', '(').Str("string_to_param")
		p.Global("torch.nn.modules.container", "ParameterDict").Op(')', 0x81)
		p.Op('}', '(').Str("training").Bool(true).Str("_parameters")
		p.Global("collections", "OrderedDict").Op(')', 'R').Op('(').Str("*")
		p.Global("torch._utils", "_rebuild_parameter").Op('(')
		st["0"] = f32Bytes(vec)
		p.Tensor("FloatStorage", "0", "cpu", 96, 0, []int64{3, 32}, []int64{32, 1}, false)
		p.Bool(true).Global("collections", "OrderedDict").Op(')', 'R', 't', 'R')
		p.Op('u', 'u', 'b', 'u')
	})
	oldDiffusers := build("old.pt", func(p *torchsavetest.Pickle, st map[string][]byte) {
		p.Op('}', '(')
		tensor(p, st, tensorSpec{"<old>", "F32", []int{32}, f32Bytes(vec[:32])})
		p.Op('u')
	})
	for _, tc := range []struct {
		name, src, token string
		rows             int
		want             []float32
	}{
		{"bare tensor", bare, "bare-tensor", 3, vec},
		{"a1111 fp16", a1111Half, "half", 3, vec}, // the values are exact in fp16
		{"ParameterDict", paramDict, "paramdict", 3, vec},
		{"diffusers 1-D", oldDiffusers, "<old>", 1, vec[:32]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Import(tc.src, Options{TextWidth: 32})
			if err != nil {
				t.Fatal(err)
			}
			if c.Token != tc.token || c.Embedding.Shape[0] != tc.rows {
				t.Errorf("token %q shape %v", c.Token, c.Embedding.Shape)
			}
			for i, v := range tc.want {
				if c.Embedding.Data[i] != v {
					t.Fatalf("value %d: %v, want %v", i, c.Embedding.Data[i], v)
				}
			}
		})
	}
	weird := build("weird.pt", func(p *torchsavetest.Pickle, st map[string][]byte) {
		p.Op('}', '(').Str("a").Int(1).Str("b").Int(2).Op('u')
	})
	if _, err := Import(weird, Options{}); err == nil || !strings.Contains(err.Error(), "[a b]") {
		t.Errorf("dict without tensors: %v", err)
	}
	if _, err := Import(bare, Options{}); err != nil {
		t.Errorf("width unchecked without TextWidth: %v", err)
	}
	var pe *os.PathError
	if _, err := Import(filepath.Join(dir, "none.pt"), Options{}); !errors.As(err, &pe) {
		t.Errorf("missing file error %v", err)
	}
}
