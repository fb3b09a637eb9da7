package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/internal/pngmeta"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/vk"
)

func needVulkan(t *testing.T) {
	t.Helper()
	if _, err := vk.ListDevices(); err != nil {
		if os.Getenv("REQUIRE_VULKAN") == "1" {
			t.Fatalf("REQUIRE_VULKAN=1 but: %v", err)
		}
		t.Skip("no Vulkan device:", err)
	}
}

// `neti generate` on sd-tiny from the fixture's initial latents, DDIM, CFG
// 7.5, 5 steps, reproduces diffusers' image within 2/255 per pixel, and
// the PNG says how it was made.
func TestGenerateReproducesDiffusers(t *testing.T) {
	needVulkan(t)
	man, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := man.Case("pipeline_ddim_cfg")
	if err != nil {
		t.Fatal(err)
	}
	var ref fixtures.TensorRef
	if err := c.Input("initial_latents", &ref); err != nil {
		t.Fatal(err)
	}
	want, _, err := c.OutputTensor("image")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cat.png")
	var stdout, stderr bytes.Buffer
	args := []string{"generate", "-m", filepath.Join(man.Root(), "model"), "-p", "a photo of a cat",
		"--latents", filepath.Join(man.Root(), ref.File), "--latents-key", ref.Key,
		"--sampler", "ddim", "--steps", "5", "--cfg-scale", "7.5", "-o", out}
	if rc := run(args, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) != out {
		t.Errorf("stdout %q, want the output path", stdout.String())
	}
	if !strings.Contains(stderr.String(), "5/5") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	const side = 128
	if img.Bounds().Dx() != side || img.Bounds().Dy() != side {
		t.Fatalf("image is %v", img.Bounds())
	}
	worst := 0.0
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for ch, v := range []uint32{r, g, bl} {
				d := math.Abs(float64(v>>8) - float64(want[(ch*side+y)*side+x])*255)
				worst = max(worst, d)
			}
		}
	}
	if worst > 2 {
		t.Errorf("pixels differ from diffusers by up to %.2f/255", worst)
	}
	texts, err := pngmeta.ReadText(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := pngmeta.Lookup(texts, pngmeta.Key)
	if !ok {
		t.Fatal("no parameters chunk")
	}
	p, err := pngmeta.ParseParams(s)
	if err != nil {
		t.Fatal(err)
	}
	if p.Prompt != "a photo of a cat" || p.Steps != 5 || p.Sampler != "DDIM" || p.CFGScale != 7.5 || p.Width != side || p.Height != side || p.Model != "model" {
		t.Errorf("parameters %+v", p)
	}
	if v, ok := p.Lookup("Initial latents"); !ok || !strings.Contains(v, ref.Key) {
		t.Errorf("parameters do not name the initial latents: %q", s)
	}
}

// brokenModel copies sd-tiny with one UNet tensor removed or reshaped.
func brokenModel(t *testing.T, reshape bool) string {
	t.Helper()
	src, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, comp := range []string{"model_index.json", "text_encoder", "tokenizer", "vae", "scheduler"} {
		if err := os.Symlink(filepath.Join(src, comp), filepath.Join(dst, comp)); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dst, "unet"), 0o755)
	cfg, err := os.ReadFile(filepath.Join(src, "unet", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, "unet", "config.json"), cfg, 0o644)
	f, err := safetensors.Open(filepath.Join(src, "unet", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts := map[string]safetensors.Tensor{}
	for _, n := range f.Names() {
		v, shape, err := f.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == "mid_block.resnets.0.conv2.weight" {
			if !reshape {
				continue
			}
			shape = []int{shape[0], shape[1], 9, 1}
		}
		ts[n] = safetensors.F32Tensor(shape, v)
	}
	if err := safetensors.Write(filepath.Join(dst, "unet", "diffusion_pytorch_model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Bad input fails before any device work with one clear message and a
// non-zero exit code.
func TestGenerateBadInput(t *testing.T) {
	tiny, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wrongLatents := filepath.Join(dir, "lat.safetensors")
	safetensors.Write(wrongLatents, map[string]safetensors.Tensor{"latents": safetensors.F32Tensor([]int{1, 3, 16, 16}, make([]float32, 768))}, nil)
	out := filepath.Join(dir, "x.png")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown sampler", []string{"-m", tiny, "--sampler", "lms"}, `unknown sampler "lms"`},
		{"width not a multiple of 8", []string{"-m", tiny, "-W", "100"}, "width 100 is not a multiple of 8"},
		{"height too fine for the UNet", []string{"-m", tiny, "-H", "136"}, "height 136 is not a multiple of 64"},
		{"missing tensor", []string{"-m", brokenModel(t, false)}, "mid_block.resnets.0.conv2.weight: missing"},
		{"mis-shaped tensor", []string{"-m", brokenModel(t, true)}, "mid_block.resnets.0.conv2.weight: shape [64 64 9 1], want [64 64 3 3]"},
		{"unwritable output", []string{"-m", tiny, "-o", filepath.Join(dir, "no", "such", "x.png")}, "does not exist"},
		{"output is a folder", []string{"-m", tiny, "-o", dir}, "is a folder"},
		{"latents of another model", []string{"-m", tiny, "--latents", wrongLatents}, "shape [3 16 16], want [1, 4, h, w]"},
		{"latents key", []string{"-m", tiny, "--latents", wrongLatents, "--latents-key", "nope"}, `no tensor "nope"`},
		{"negative seed", []string{"-m", tiny, "--seed", "-7"}, "--seed -7"},
		{"zero steps", []string{"-m", tiny, "--steps", "0"}, "--steps 0"},
		{"no such model", []string{"-m", filepath.Join(dir, "nope")}, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"generate", "-p", "a cat", "-o", out}, c.args...)
			if rc := run(args, &stdout, &stderr); rc == 0 {
				t.Fatal("exit code 0")
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), c.want)
			}
			if !strings.HasPrefix(stderr.String(), "neti generate: ") {
				t.Errorf("stderr %q is not one error message", stderr.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("an image was written")
			}
		})
	}
}

func TestGenerateDryRun(t *testing.T) {
	tiny, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"generate", "-m", tiny, "-p", "a cat", "--dry-run", "--vae-tile", "8"}, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	for _, want := range []string{"128x128 (latent 16x16)", "planned peak device memory", "unet", "tiles of 8x8", "storage: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout.String())
		}
	}
	// --no-half plans fp32 storage; where the default stored fp16 that
	// plan is larger.
	var full bytes.Buffer
	if rc := run([]string{"generate", "-m", tiny, "-p", "a cat", "--dry-run", "--vae-tile", "8", "--no-half"}, &full, &stderr); rc != 0 {
		t.Fatalf("--no-half: exit %d: %s", rc, stderr.String())
	}
	if !strings.Contains(full.String(), "storage: fp32 (--no-half)") {
		t.Errorf("--no-half dry run does not say fp32 storage:\n%s", full.String())
	}
	peak := func(s string) string {
		_, after, _ := strings.Cut(s, "planned peak device memory: ")
		line, _, _ := strings.Cut(after, "\n")
		return line
	}
	if strings.Contains(stdout.String(), "storage: fp16") && peak(stdout.String()) == peak(full.String()) {
		t.Errorf("fp16 and fp32 storage plan the same peak %s", peak(full.String()))
	}
}

func TestModelInitErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"model", "init", "--config", "sdxl", "--out", filepath.Join(dir, "m")}, `unknown architecture "sdxl"`},
		{[]string{"model", "init", "--out", dir}, "already exists"},
		{[]string{"model", "init"}, "--out is required"},
		{[]string{"model", "frobnicate"}, "unknown subcommand"},
	} {
		var stdout, stderr bytes.Buffer
		if rc := run(c.args, &stdout, &stderr); rc == 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, rc, stderr.String(), c.want)
		}
	}
}

func TestOutputNames(t *testing.T) {
	for _, c := range []struct {
		path string
		n    int
		want []string
	}{
		{"out.png", 1, []string{"out.png"}},
		{"a/out.png", 3, []string{"a/out-1.png", "a/out-2.png", "a/out-3.png"}},
		{"img", 2, []string{"img-1.png", "img-2.png"}},
	} {
		got := outputNames(c.path, c.n)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s x%d: %v", c.path, c.n, got)
		}
	}
}
