package ref_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/neti-project/neti/graph/ref"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/safetensors"
)

// These tests run short chains of refs on the upstream fixtures (diffusers
// and official NeTI outputs), so the package's semantics are pinned to
// PyTorch's and not only to its own derivations.

// weights reads float32 tensors of one safetensors file by name.
type weights struct {
	t *testing.T
	f *safetensors.File
}

func openWeights(t *testing.T, path string) weights {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return weights{t, f}
}

func (w weights) get(name string) []float32 {
	w.t.Helper()
	v, _, err := w.f.Float32(name)
	if err != nil {
		w.t.Fatalf("tensor %s: %v", name, err)
	}
	return v
}

func sdCase(t *testing.T, name string) *fixtures.Case {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Case(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expectOutput compares got with the case output within its suggested atol.
func expectOutput(t *testing.T, c *fixtures.Case, output string, got []float32) {
	t.Helper()
	want, _, err := c.OutputTensor(output)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", output, len(got), len(want))
	}
	atol := c.Atol(output)
	if atol == 0 {
		t.Fatalf("%s: manifest gives no tolerance", output)
	}
	var worst float64
	at := 0
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= worst) {
			worst, at = d, i
		}
	}
	if worst > atol {
		t.Errorf("%s: max |diff| %.3g at %d (got %v, want %v) > atol %.3g", output, worst, at, got[at], want[at], atol)
	}
}

func TestFixtureUNetTimeAndConvIn(t *testing.T) {
	c := sdCase(t, "unet_batch_timesteps")
	var steps []float32
	if err := c.Input("timesteps", &steps); err != nil {
		t.Fatal(err)
	}
	w := openWeights(t, filepath.Join(c.Root(), "model", "unet", "diffusion_pytorch_model.safetensors"))

	// time_proj: C0 = 32, flip_sin_to_cos, freq_shift 0. Torch's float32
	// exp (SLEEF, 1-ulp accurate) and the correctly rounded one used here
	// disagree by one ulp of a frequency near rounding ties (i = 7 in this
	// fixture), which t = 750 amplifies to ~1.4e-6 > the manifest's 1e-6.
	// So each value may differ by t·ulp(freq_i) on top of the manifest atol;
	// computing the argument in float64 instead fails this check (by up to
	// half an ulp of t·freq, 7e-6 here).
	tp := ref.TimestepEmbedding(steps, 32, true, 0, 1, 10000)
	want, _, err := c.OutputTensor("intermediate/time_proj")
	if err != nil {
		t.Fatal(err)
	}
	if len(tp) != len(want) {
		t.Fatalf("time_proj: %d values, want %d", len(tp), len(want))
	}
	for r, step := range steps {
		for j := 0; j < 32; j++ {
			freq := math.Exp(-math.Log(10000) * float64(j%16) / 16)
			ulp := math.Ldexp(1, math.Ilogb(freq)-23)
			tol := c.Atol("intermediate/time_proj") + float64(step)*ulp
			if d := math.Abs(float64(tp[r*32+j] - want[r*32+j])); d > tol {
				t.Errorf("time_proj[%d,%d] = %v, want %v (|diff| %.3g > %.3g)", r, j, tp[r*32+j], want[r*32+j], d, tol)
			}
		}
	}

	// time_embedding: Linear(32,128) -> SiLU -> Linear(128,128).
	n := len(steps)
	h := ref.Linear(tp, n, 32, w.get("time_embedding.linear_1.weight"), 128, w.get("time_embedding.linear_1.bias"))
	temb := ref.Linear(ref.SiLU(h), n, 128, w.get("time_embedding.linear_2.weight"), 128, w.get("time_embedding.linear_2.bias"))
	expectOutput(t, c, "intermediate/time_embedding", temb)

	// conv_in: 3x3, padding 1.
	sample, shape, err := c.InputTensor("sample")
	if err != nil {
		t.Fatal(err)
	}
	y, _, _ := ref.Conv2d(sample, shape[0], shape[1], shape[2], shape[3],
		w.get("conv_in.weight"), 32, 3, 3, w.get("conv_in.bias"), ref.Conv2dParams{StrideH: 1, StrideW: 1, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1})
	expectOutput(t, c, "intermediate/conv_in", y)
}

func TestFixtureNeTIMapper(t *testing.T) {
	c := sdCase(t, "neti_mapper")
	var steps, layers []float32
	var truncs []int
	var normScale float32
	for name, v := range map[string]any{"timesteps": &steps, "unet_layers": &layers, "truncation_idxs": &truncs} {
		if err := c.Input(name, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Param("norm_scale", &normScale); err != nil {
		t.Fatal(err)
	}
	w := openWeights(t, filepath.Join(c.Root(), "neti", "mapper.safetensors"))
	n := len(steps)
	const numW, hid = 1024, 128
	out := len(w.get("output_layer.0.bias"))

	pe := ref.FourierFeatures(w.get("encoder.w"), numW, steps, layers)
	expectOutput(t, c, "pe_first32", pe[:32*2*numW])

	h := ref.Linear(pe, n, 2*numW, w.get("input_layer.weight"), 160, w.get("input_layer.bias"))
	h = ref.Linear(h, n, 160, w.get("net.1.weight"), hid, w.get("net.1.bias"))
	h = ref.LeakyReLU(ref.LayerNorm(h, n, hid, w.get("net.2.weight"), w.get("net.2.bias"), 1e-5), 0.01)
	h = ref.Linear(h, n, hid, w.get("net.4.weight"), hid, w.get("net.4.bias"))
	h = ref.LeakyReLU(ref.LayerNorm(h, n, hid, w.get("net.5.weight"), w.get("net.5.bias"), 1e-5), 0.01)
	expectOutput(t, c, "hidden", h)

	project := func(hidden []float32) []float32 {
		o := ref.Linear(hidden, n, hid, w.get("output_layer.0.weight"), out, w.get("output_layer.0.bias"))
		// The norm covers the whole 2D-vector, both halves together.
		return ref.L2NormalizeScale(o, n, out, normScale)
	}
	expectOutput(t, c, "output", project(h))
	for _, k := range truncs {
		tr := append([]float32(nil), h...)
		for r := 0; r < n; r++ {
			clear(tr[r*hid+k : (r+1)*hid])
		}
		expectOutput(t, c, fmt.Sprintf("output_trunc_%d", k), project(tr))
	}
}
