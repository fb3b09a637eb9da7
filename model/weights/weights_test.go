package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/torchpickle/torchsavetest"
	"github.com/neti-project/neti/model/safetensors"
)

func modelDir(t testing.TB, model string) string {
	t.Helper()
	p, err := fixtures.Path(model, "model")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var components = []string{TextEncoder, UNet, VAE}

// TestFolderFixtures checks the expected-tensor tables against the real
// files: every tensor present with its shape, and nothing else.
func TestFolderFixtures(t *testing.T) {
	for _, model := range []string{"sd-tiny", "sd-shapes"} {
		f, err := OpenFolder(modelDir(t, model))
		if err != nil {
			t.Fatal(err)
		}
		for _, comp := range components {
			t.Run(model+"/"+comp, func(t *testing.T) {
				s, err := f.Weights(comp)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				e, err := f.Expect(comp)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Check(s); err != nil {
					t.Fatal(err)
				}
				for _, n := range s.Names() {
					_, req := e.Shapes[n]
					_, opt := e.Optional[n]
					if !req && !opt {
						t.Errorf("file has %s, which the expectation does not list", n)
					}
				}
				// Reading through the store gives what the file holds.
				name := s.Names()[0]
				in, _ := s.Info(name)
				raw := make([]byte, in.Bytes())
				if err := s.ReadRaw(name, raw); err != nil {
					t.Fatal(err)
				}
				p, _ := f.WeightsPath(comp)
				sf, err := safetensors.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer sf.Close()
				want := make([]byte, in.Bytes())
				if err := sf.ReadRaw(name, want); err != nil || !bytes.Equal(raw, want) {
					t.Errorf("%s: bytes differ from the file (%v)", name, err)
				}
			})
		}
		if f.TokenizerDir != filepath.Join(f.Root, "tokenizer") || f.Index.Components["unet"].Class != "UNet2DConditionModel" {
			t.Errorf("folder %+v", f)
		}
	}
}

// copyFolder copies a model folder's small files and links the weights.
func copyFolder(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(p, ".safetensors") {
			return os.Symlink(p, target)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestFolderErrors(t *testing.T) {
	src := modelDir(t, "sd-tiny")
	tests := []struct {
		name   string
		modify func(dir string) error
		want   []string
	}{
		{"no unet", func(d string) error { return os.RemoveAll(filepath.Join(d, "unet")) }, []string{"missing unet/"}},
		{"no unet, no vae config", func(d string) error {
			return errorsJoin(os.RemoveAll(filepath.Join(d, "unet")), os.Remove(filepath.Join(d, "vae", "config.json")))
		}, []string{"unet/", "vae/config.json"}},
		{"no scheduler config", func(d string) error { return os.Remove(filepath.Join(d, "scheduler", "scheduler_config.json")) }, []string{"scheduler/scheduler_config.json"}},
		{"no merges", func(d string) error { return os.Remove(filepath.Join(d, "tokenizer", "merges.txt")) }, []string{"tokenizer/merges.txt"}},
		{"sdxl index", func(d string) error {
			return os.WriteFile(filepath.Join(d, "model_index.json"), []byte(`{"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}`), 0o644)
		}, []string{"SDXL"}},
		{"wrong unet class", func(d string) error {
			return os.WriteFile(filepath.Join(d, "model_index.json"), []byte(`{"unet": ["diffusers", "UNet2DModel"]}`), 0o644)
		}, []string{"UNet2DModel"}},
		{"context width", func(d string) error {
			return os.WriteFile(filepath.Join(d, "text_encoder", "config.json"), []byte(`{"hidden_size": 64, "num_attention_heads": 4}`), 0o644)
		}, []string{"cross_attention_dim 32", "hidden_size 64"}},
		{"bad unet config", func(d string) error {
			return os.WriteFile(filepath.Join(d, "unet", "config.json"), []byte(`{"class_embed_type": "timestep"}`), 0o644)
		}, []string{"class_embed_type", "unet/config.json"}},
		{"inpainting", func(d string) error {
			b, _ := os.ReadFile(filepath.Join(src, "unet", "config.json"))
			return os.WriteFile(filepath.Join(d, "unet", "config.json"), bytes.Replace(b, []byte(`"in_channels": 4`), []byte(`"in_channels": 9`), 1), 0o644)
		}, []string{"in/out channels 9/4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyFolder(t, src)
			if err := tc.modify(dir); err != nil {
				t.Fatal(err)
			}
			_, err := OpenFolder(dir)
			if err == nil {
				t.Fatal("opened, want an error")
			}
			for _, w := range append(tc.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := OpenFolder(filepath.Join(src, "model_index.json")); err == nil || !strings.Contains(err.Error(), "not a diffusers folder") {
		t.Errorf("file as folder: %v", err)
	}
	dir := copyFolder(t, src)
	if err := os.Remove(filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Weights(VAE); err == nil || !strings.Contains(err.Error(), "no weights file") || !strings.Contains(err.Error(), filepath.Join(dir, "vae")) {
		t.Errorf("missing weights: %v", err)
	}
	if _, err := f.Weights("tokenizer"); err == nil {
		t.Error("Weights(tokenizer): want an error")
	}
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// writeStore writes tensors to a safetensors file, each given as raw
// bytes with a dtype and shape.
func writeStore(t *testing.T, path string, tensors map[string]safetensors.Tensor) {
	t.Helper()
	if err := safetensors.Write(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every tensor of a store as safetensors.Tensors.
func readAll(t *testing.T, s Store) map[string]safetensors.Tensor {
	t.Helper()
	out := map[string]safetensors.Tensor{}
	for _, n := range s.Names() {
		in, _ := s.Info(n)
		b := make([]byte, in.Bytes())
		if err := s.ReadRaw(n, b); err != nil {
			t.Fatal(err)
		}
		out[n] = safetensors.Tensor{DType: in.DType, Shape: in.Shape, Data: b}
	}
	return out
}

func f32(shape []int, v ...float32) safetensors.Tensor { return safetensors.F32Tensor(shape, v) }

func TestCheckReportsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	tensors := map[string]safetensors.Tensor{
		"ok":   f32([]int{2}, 1, 2),
		"bad":  f32([]int{2}, 1, 2),
		"ints": {DType: safetensors.I64, Shape: []int{1}, Data: make([]byte, 8)},
	}
	writeStore(t, path, tensors)
	s, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string][]int{"ok": {2}, "bad": {3, 1}, "ints": {1}}
	for i := range 30 {
		want[fmt.Sprintf("missing.%02d", i)] = []int{i + 1}
	}
	err = Check(s, want)
	if err == nil {
		t.Fatal("Check passed")
	}
	lines := strings.Split(err.Error(), "\n")
	if !strings.Contains(lines[0], "32 of 33") {
		t.Errorf("header %q", lines[0])
	}
	if len(lines) != 1+20+1 || lines[21] != "  ... and 12 more" {
		t.Errorf("got %d lines, last %q:\n%s", len(lines), lines[len(lines)-1], err)
	}
	wantLines := []string{
		"  bad: shape [2], want [3 1]",
		"  ints: dtype I64, want a floating-point type",
		"  missing.00: missing (want shape [1])",
	}
	if !reflect.DeepEqual(lines[1:4], wantLines) {
		t.Errorf("first lines\n%q\nwant\n%q", lines[1:4], wantLines)
	}
	if !sort.StringsAreSorted(lines[1:21]) {
		t.Error("problems are not sorted")
	}
	if err := Check(s, map[string][]int{"ok": {2}}); err != nil {
		t.Errorf("subset: %v", err)
	}
	opt := Expect{Component: "x", Shapes: map[string][]int{"ok": {2}}, Optional: map[string][]int{"ints": {5}, "absent": {1}}}
	if err := opt.Check(s); err == nil || !strings.Contains(err.Error(), "weights: x: 1 of 3") || !strings.Contains(err.Error(), "ints: shape [1], want [5]") {
		t.Errorf("optional: %v", err)
	}
}

func TestShardedAndPrefixed(t *testing.T) {
	f, err := OpenFolder(modelDir(t, "sd-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	te, err := f.Weights(TextEncoder)
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, te)
	te.Close()
	dir := t.TempDir()
	shards := [2]map[string]safetensors.Tensor{{}, {}}
	weightMap := map[string]string{}
	for i, n := range slices.Sorted(maps.Keys(all)) {
		shards[i%2][n] = all[n]
		weightMap[n] = fmt.Sprintf("model-0000%d-of-00002.safetensors", i%2+1)
	}
	for i, sh := range shards {
		writeStore(t, filepath.Join(dir, fmt.Sprintf("model-0000%d-of-00002.safetensors", i+1)), sh)
	}
	writeIndex := func(m map[string]string) string {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": m})
		p := filepath.Join(dir, "model.safetensors.index.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := Open(writeIndex(weightMap))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s); !reflect.DeepEqual(got, all) {
		t.Error("sharded store differs from the single file")
	}
	v, _, err := s.Float32("text_model.final_layer_norm.weight")
	if err != nil || len(v) != 32 {
		t.Errorf("Float32 through shards: %d values, %v", len(v), err)
	}
	p := Prefixed(s, "text_model.encoder.layers.1.")
	if len(p.Names()) != 16 {
		t.Errorf("prefixed view has %d names, want 16: %v", len(p.Names()), p.Names())
	}
	in, ok := p.Info("mlp.fc1.weight")
	if !ok || !reflect.DeepEqual(in.Shape, []int{37, 32}) || in.Name != "mlp.fc1.weight" {
		t.Errorf("prefixed Info = %+v, %v", in, ok)
	}
	b := make([]byte, in.Bytes())
	if err := p.ReadRaw("mlp.fc1.weight", b); err != nil || !bytes.Equal(b, all["text_model.encoder.layers.1.mlp.fc1.weight"].Data) {
		t.Errorf("prefixed ReadRaw: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Float32("text_model.final_layer_norm.weight"); err != nil {
		t.Errorf("closing the prefixed view closed the store: %v", err)
	}
	s.Close()

	bad := []struct {
		name string
		m    map[string]string
		want string
	}{
		{"escape", map[string]string{"x": "../model-00001-of-00002.safetensors"}, "same folder"},
		{"absent shard", map[string]string{"x": "nope.safetensors"}, "nope.safetensors"},
		{"wrong shard", func() map[string]string {
			for n, sh := range weightMap {
				if strings.Contains(sh, "00002-of") {
					return map[string]string{n: "model-00001-of-00002.safetensors"}
				}
			}
			return nil
		}(), "is not in shard"},
		{"empty", map[string]string{}, "weight_map"},
	}
	for _, tc := range bad {
		if _, err := Open(writeIndex(tc.m)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestLegacyVAENames(t *testing.T) {
	src := modelDir(t, "sd-tiny")
	dir := copyFolder(t, src)
	f, err := OpenFolder(src)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Weights(VAE)
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, s)
	s.Close()
	old := map[string]safetensors.Tensor{}
	for n, v := range all {
		for from, to := range legacyVAEAttention {
			n = strings.Replace(n, "attentions.0."+to+".", "attentions.0."+from+".", 1)
		}
		old[n] = v
	}
	if _, ok := old["decoder.mid_block.attentions.0.proj_attn.weight"]; !ok {
		t.Fatal("test setup: no legacy names written")
	}
	p := filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")
	os.Remove(p)
	writeStore(t, p, old)
	f2, err := OpenFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := f2.Weights(VAE)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := readAll(t, s2); !reflect.DeepEqual(got, all) {
		t.Error("legacy VAE names are not presented as the current ones")
	}
}

func TestCheckpointStore(t *testing.T) {
	f, err := OpenFolder(modelDir(t, "sd-shapes"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Weights(TextEncoder)
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, s)
	s.Close()
	var entries []torchsavetest.Entry
	for _, n := range slices.Sorted(maps.Keys(all)) {
		entries = append(entries, torchsavetest.Entry{Name: n, DType: string(all[n].DType), Shape: all[n].Shape, Data: all[n].Data})
	}
	dir := t.TempDir()
	for _, nested := range []bool{false, true} {
		b, err := torchsavetest.StateDict("archive", entries, nested)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("nested-%v.ckpt", nested))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c); !reflect.DeepEqual(got, all) {
			t.Errorf("nested=%v: checkpoint store differs from the safetensors file", nested)
		}
		v, shape, err := c.Float32("text_model.final_layer_norm.weight")
		want, _ := safetensors.ToFloat32(safetensors.F16, all["text_model.final_layer_norm.weight"].Data)
		if err != nil || !reflect.DeepEqual(shape, []int{64}) || !reflect.DeepEqual(v, want) {
			t.Errorf("Float32: %v %v", shape, err)
		}
		c.Close()
		if err := c.ReadRaw("text_model.final_layer_norm.weight", make([]byte, 128)); err == nil {
			t.Error("read after Close succeeded")
		}
	}
	evil, err := fixtures.Path("neti-import", "bad-evil.pt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(evil); err == nil || !strings.Contains(err.Error(), "posix.system") {
		t.Errorf("evil checkpoint: %v", err)
	}
	cfgOnly, _ := torchsavetest.StateDict("archive", nil, true)
	p := filepath.Join(dir, "empty.ckpt")
	os.WriteFile(p, cfgOnly, 0o644)
	if _, err := OpenCheckpoint(p); err == nil || !strings.Contains(err.Error(), "no tensors") {
		t.Errorf("empty state dict: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "x.onnx")); err == nil || !strings.Contains(err.Error(), "unknown weights file type") {
		t.Errorf("unknown extension: %v", err)
	}
}

func TestOpenSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	writeStore(t, good, map[string]safetensors.Tensor{"a": f32([]int{4}, 1, 2, 3, 4)})
	b, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, b[:len(b)-4], 0o644)
	if _, err := Open(trunc); err == nil || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), trunc) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "absent.safetensors")); err == nil || !strings.Contains(err.Error(), "absent.safetensors") {
		t.Errorf("absent: %v", err)
	}
}
