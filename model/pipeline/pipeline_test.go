package pipeline

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/testdev"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/vk"
)

func TestMain(m *testing.M) { testdev.Main(m) }

// device returns the shared validating device (skipping without one); any
// validation message fails the test.
func device(t testing.TB) *vk.Device { return testdev.Device(t) }

func openModel(t testing.TB, dir string) *sd.Model {
	t.Helper()
	m, err := sd.Open(dir, sd.Options{Weights: graph.WeightsF32}) // fp32 fixture references
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func fixtureDir(t testing.TB, name string) string {
	t.Helper()
	p, err := fixtures.Path(name, "model")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Values torch prints for torch.manual_seed(s); torch.randn(n): the
// scalar path (n < 16) and the vectorised one (n >= 16).
func TestGeneratorMatchesTorch(t *testing.T) {
	for _, c := range []struct {
		seed uint64
		n    int
		want []float32
	}{
		{0, 3, []float32{1.5410, -0.2934, -2.1788}},
		{42, 3, []float32{0.3367, 0.1288, 0.2345}},
		{0, 16, []float32{-1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.6920, -0.3160, -2.1152,
			0.3223, -1.2633, 0.3500, 0.3081, 0.1198, 1.2377, 1.1168, -0.2473}},
	} {
		got := NewGenerator(c.seed).Randn(c.n)
		for i, w := range c.want {
			if math.Abs(float64(got[i]-w)) > 6e-5 {
				t.Errorf("seed %d randn(%d)[%d] = %.5f, torch gives %.4f", c.seed, c.n, i, got[i], w)
			}
		}
	}
	// A size that is not a multiple of 16 redraws its last block: the
	// first full blocks are those of the larger draw's prefix.
	a, b := NewGenerator(7).Randn(40), NewGenerator(7).Randn(32)
	if !slices.Equal(a[:16], b[:16]) || slices.Equal(a[24:32], b[24:32]) {
		t.Error("tail handling does not follow torch's normal_fill")
	}
	// Draws continue the stream: two draws differ, a reseed repeats.
	g := NewGenerator(3)
	x, y := g.Randn(64), g.Randn(64)
	if slices.Equal(x, y) || !slices.Equal(x, NewGenerator(3).Randn(64)) {
		t.Error("generator stream is not a seeded sequence")
	}
	var sum, sq float64
	for _, v := range NewGenerator(11).Randn(1 << 16) {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean, vr := sum/(1<<16), sq/(1<<16)
	if math.Abs(mean) > 0.02 || math.Abs(vr-1) > 0.03 {
		t.Errorf("randn moments: mean %.4f, variance %.4f", mean, vr)
	}
}

func TestSamplerName(t *testing.T) {
	for in, want := range map[string]string{"": "", "DPM++2M": "dpm++2m", "DPM++ 2M": "dpm++2m", "ddim": "ddim",
		"Euler a": "euler_a", "euler-a": "euler_a", "PNDM": "pndm", "dpmpp2m": "dpm++2m"} {
		got, err := SamplerName(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q accepted", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
		if back, err := SamplerName(DisplayName(got)); err != nil || back != got {
			t.Errorf("display name %q does not map back", DisplayName(got))
		}
	}
	for _, bad := range []string{"lms", "heun", "plms2"} {
		if _, err := SamplerName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The whole diffusers pipeline on sd-tiny: DDIM, CFG 7.5, 5 steps, from the
// fixture's initial latents; every step's latents and the image.
func TestPipelineDDIMCFG(t *testing.T) {
	dev := device(t)
	man, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := man.Case("pipeline_ddim_cfg")
	if err != nil {
		t.Fatal(err)
	}
	m := openModel(t, fixtureDir(t, "sd-tiny"))
	init, _, err := c.InputTensor("initial_latents")
	if err != nil {
		t.Fatal(err)
	}
	var prompt, neg string
	c.Input("prompt", &prompt)
	c.Input("negative_prompt", &neg)
	ids, _, err := c.InputInts("input_ids_neg_pos")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{neg, prompt} {
		got, _, _ := m.Tokenizer.EncodePadded(s)
		for j := range got {
			if int64(got[j]) != ids[i*77+j] {
				t.Fatalf("prompt %q token %d: %d, want %d", s, j, got[j], ids[i*77+j])
			}
		}
	}
	perStep, _, err := c.OutputTensor("latents_per_step")
	if err != nil {
		t.Fatal(err)
	}
	var wantTs []float64
	c.Output("timesteps", &wantTs)
	n := len(init)
	var gotTs []float64
	p := New(m, dev)
	defer p.Close()
	res, err := p.Generate(Options{
		Prompt: prompt, NegativePrompt: neg, Steps: 5, CFGScale: 7.5, Sampler: "ddim",
		Width: 128, Height: 128, Latents: init,
		OnStep: func(s Step) error {
			gotTs = append(gotTs, s.Timestep)
			want := perStep[s.Index*n : (s.Index+1)*n]
			if e := graph.RelErr(s.Latents, want); !(e <= 1e-4) {
				t.Errorf("latents after step %d: relative error %.3g", s.Index, e)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotTs, wantTs) {
		t.Errorf("timesteps %v, want %v", gotTs, wantTs)
	}
	want, _, _ := c.OutputTensor("final_latents")
	if e := graph.RelErr(res.Latents, want); !(e <= 1e-4) {
		t.Errorf("final latents: relative error %.3g", e)
	}
	img, _, _ := c.OutputTensor("image")
	if e := graph.RelErr(res.Pixels, img); !(e <= 1e-4) {
		t.Errorf("image: relative error %.3g", e)
	}
	if d := maxPixelDiff(res.Image.Pix, img, 128, 128); d > 2 {
		t.Errorf("8-bit image differs by %d/255 from the reference", d)
	}
}

// maxPixelDiff compares RGBA bytes with a [3, h, w] float image in [0, 1].
func maxPixelDiff(pix []uint8, ref []float32, h, w int) int {
	worst := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				want := int(math.RoundToEven(float64(ref[(c*h+y)*w+x] * 255)))
				d := int(pix[(y*w+x)*4+c]) - want
				worst = max(worst, d, -d)
			}
		}
	}
	return worst
}

// The same seed gives the same image bytes. Euler a also draws noise at
// every step, so its stream is covered too (that other seeds give other
// noise is TestGeneratorMatchesTorch's).
func TestDeterministic(t *testing.T) {
	dev := device(t)
	m := openModel(t, fixtureDir(t, "sd-shapes"))
	p := New(m, dev)
	defer p.Close()
	gen := func(seed uint64) []byte {
		res, err := p.Generate(Options{Prompt: "a red circle on a blue background", Steps: 2, CFGScale: 6, Sampler: "euler_a", Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, res.Image); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if !bytes.Equal(gen(1), gen(1)) {
		t.Error("the same seed gave different images")
	}
}

func TestBadOptions(t *testing.T) {
	m := openModel(t, fixtureDir(t, "sd-tiny"))
	p := New(m, nil) // every case must fail before touching the device
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Steps: 5, Sampler: "lms"}, "unknown sampler"},
		{Options{Steps: 0}, "steps"},
		{Options{Steps: 5, CFGScale: math.NaN()}, "cfg scale"},
		{Options{Steps: 5, Width: 100, Height: 128}, "not a multiple of 8"},
		{Options{Steps: 5, Width: 136, Height: 128}, "not a multiple of 64"},
		{Options{Steps: 5, Width: 128, Height: 128, Latents: make([]float32, 7)}, "initial latent"},
		{Options{Steps: 5, Width: 128, Height: 128, Latents: append(make([]float32, 1023), float32(math.Inf(1)))}, "index 1023"},
	} {
		_, err := p.Generate(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.o, err, c.want)
		}
	}
}

// A model whose UNet produces NaN stops at the first step with an error
// that names it, rather than writing a black image.
func TestNaNStops(t *testing.T) {
	dev := device(t)
	src := fixtureDir(t, "sd-tiny")
	dir := t.TempDir()
	for _, comp := range []string{"model_index.json", "text_encoder", "tokenizer", "vae", "scheduler"} {
		if err := os.Symlink(filepath.Join(src, comp), filepath.Join(dir, comp)); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "unet"), 0o755)
	b, _ := os.ReadFile(filepath.Join(src, "unet", "config.json"))
	os.WriteFile(filepath.Join(dir, "unet", "config.json"), b, 0o644)
	f, err := safetensors.Open(filepath.Join(src, "unet", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]safetensors.Tensor{}
	for _, name := range f.Names() {
		v, shape, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "conv_out.bias" {
			v[0] = float32(math.NaN())
		}
		ts[name] = safetensors.F32Tensor(shape, v)
	}
	f.Close()
	if err := safetensors.Write(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	m := openModel(t, dir)
	p := New(m, dev)
	defer p.Close()
	_, err = p.Generate(Options{Prompt: "x", Steps: 3, CFGScale: 7.5, Sampler: "ddim"})
	if err == nil || !strings.Contains(err.Error(), "step 1/3") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("error %v, want one naming step 1/3 and NaN", err)
	}
}
