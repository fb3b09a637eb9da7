package sd

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/safetensors"
	"github.com/neti-project/neti/model/weights"
)

func TestOpenFixtures(t *testing.T) {
	for _, c := range []struct {
		name                       string
		factor, multiple, size     int
		hidden, layers, vocab, seq int
	}{
		{"sd-tiny", 8, 64, 128, 32, 3, 1000, 77},
		{"sd-shapes", 4, 32, 64, 64, 4, 2048, 77},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := fixtureModel(t, c.name)
			if m.Name != "model" && m.Name != c.name {
				t.Errorf("name %q", m.Name)
			}
			if m.LatentFactor() != c.factor || m.SizeMultiple() != c.multiple || m.DefaultSize() != c.size {
				t.Errorf("factor %d, multiple %d, size %d; want %d, %d, %d", m.LatentFactor(), m.SizeMultiple(), m.DefaultSize(), c.factor, c.multiple, c.size)
			}
			if m.Text.Hidden != c.hidden || m.Text.Layers != c.layers || m.Text.Vocab != c.vocab || m.Tokenizer.MaxLength() != c.seq {
				t.Errorf("text encoder %+v", m.Text)
			}
			if m.UNet.CrossAttentionLayers() != 16 {
				t.Errorf("%d cross-attention layers", m.UNet.CrossAttentionLayers())
			}
			fp, err := m.Fingerprint()
			if err != nil {
				t.Fatal(err)
			}
			if fp.TextWidth != c.hidden || fp.TextLayers != c.layers || fp.VocabSize != c.vocab || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(fp.Hash) {
				t.Errorf("fingerprint %+v", fp)
			}
			again, _ := m.Fingerprint()
			if again != fp {
				t.Error("fingerprint changes between calls")
			}
		})
	}
	a, _ := fixtureModel(t, "sd-tiny").Fingerprint()
	b, _ := fixtureModel(t, "sd-shapes").Fingerprint()
	if a.Hash == b.Hash {
		t.Error("two text encoders share a fingerprint hash")
	}
}

func TestCheckSize(t *testing.T) {
	m := fixtureModel(t, "sd-tiny")
	for _, c := range []struct {
		w, h int
		want string // "" = accepted
	}{
		{128, 128, ""},
		{64, 192, ""},
		{100, 128, "width 100 is not a multiple of 8"},
		{128, 130, "height 130 is not a multiple of 8"},
		{136, 128, "not a multiple of 64"},
		{0, 128, "positive"},
		{-64, 128, "positive"},
		{1 << 20, 128, "larger"},
	} {
		err := m.CheckSize(c.w, c.h)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%dx%d: %v, want %q", c.w, c.h, err, c.want)
		}
	}
}

// copyModel makes a writable copy of a fixture model whose UNet weights are
// changed by edit (nil: copied as is).
func copyModel(t *testing.T, name string, edit func(map[string]safetensors.Tensor)) string {
	t.Helper()
	src, err := fixtures.Path(name, "model")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, comp := range []string{"model_index.json", "text_encoder", "tokenizer", "vae", "scheduler"} {
		if err := os.Symlink(filepath.Join(src, comp), filepath.Join(dst, comp)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dst, "unet"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(src, "unet", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, "unet", "config.json"), b, 0o644)
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
		ts[n] = safetensors.F32Tensor(shape, v)
	}
	if edit != nil {
		edit(ts)
	}
	if err := safetensors.Write(filepath.Join(dst, "unet", "diffusion_pytorch_model.safetensors"), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestOpenErrors(t *testing.T) {
	const victim = "down_blocks.1.resnets.0.conv1.weight"
	missing := copyModel(t, "sd-tiny", func(ts map[string]safetensors.Tensor) { delete(ts, victim) })
	reshaped := copyModel(t, "sd-tiny", func(ts map[string]safetensors.Tensor) {
		v := ts[victim]
		v.Shape = []int{v.Shape[0], v.Shape[1] * 9, 1, 1}
		ts[victim] = v
	})
	single := filepath.Join(t.TempDir(), "model.safetensors")
	safetensors.Write(single, map[string]safetensors.Tensor{"x": safetensors.F32Tensor([]int{1}, []float32{1})}, nil)
	for _, c := range []struct {
		name, path string
		want       []string
	}{
		{"missing tensor", missing, []string{victim, "missing"}},
		{"mis-shaped tensor", reshaped, []string{victim, "shape [32 288 1 1], want [32 32 3 3]"}},
		{"no such path", filepath.Join(t.TempDir(), "nope"), []string{"no such file"}},
		{"single file without tokenizer", single, []string{"holds no tokenizer"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(c.path, Options{})
			if err == nil {
				m.Close()
				t.Fatal("opened")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestTileStarts(t *testing.T) {
	for _, c := range []struct {
		n, t, ov int
		want     []int
	}{
		{16, 16, 4, []int{0}},
		{16, 32, 4, []int{0}},
		{16, 8, 2, []int{0, 6, 8}},
		{64, 32, 8, []int{0, 24, 32}},
		{10, 6, 4, []int{0, 2, 4}},
	} {
		got := tileStarts(c.n, c.t, c.ov)
		if len(got) != len(c.want) {
			t.Errorf("%+v: %v", c, got)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%+v: %v", c, got)
			}
		}
	}
}

// For a decoder that acts on each latent pixel alone, tiling must give
// exactly the whole decode: the blend weights sum to one everywhere.
func TestTiledDecodeBlend(t *testing.T) {
	const c, outC, f = 2, 3, 4
	pixelwise := func(h, w int) func([]float32) ([]float32, error) {
		return func(z []float32) ([]float32, error) {
			out := make([]float32, outC*h*f*w*f)
			for o := 0; o < outC; o++ {
				for y := 0; y < h*f; y++ {
					for x := 0; x < w*f; x++ {
						v := float32(o)
						for ch := 0; ch < c; ch++ {
							v += z[(ch*h+y/f)*w+x/f] * float32(ch+1)
						}
						out[(o*h*f+y)*w*f+x] = v
					}
				}
			}
			return out, nil
		}
	}
	for _, tl := range []Tiling{{true, 4, 4, 1}, {true, 5, 3, 2}, {true, 7, 7, 3}, {true, 9, 2, 1}} {
		h, w := 9, 7
		z := make([]float32, c*h*w)
		for i := range z {
			z[i] = float32(i%13) - 6
		}
		want, _ := pixelwise(h, w)(z)
		th, tw := min(tl.H, h), min(tl.W, w)
		tl.H, tl.W = th, tw
		got, err := tiledDecode(z, c, h, w, outC, f, tl, pixelwise(th, tw))
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(got, want); e > 1e-6 {
			t.Errorf("tiling %+v: relative error %.3g", tl, e)
		}
	}
}

func TestChooseTiling(t *testing.T) {
	m := fixtureModel(t, "sd-tiny")
	none := Limits{}
	if tl, err := m.chooseTiling(16, 16, DecoderOptions{}, none); err != nil || tl.Tiled {
		t.Errorf("no limits: %+v, %v", tl, err)
	}
	full, _, err := m.PlanDecoder(16, 16, DecoderOptions{}, none)
	if err != nil {
		t.Fatal(err)
	}
	// A budget below the whole decode's plan forces tiles, and the tiles'
	// plan fits it.
	tight := Limits{Budget: full.PeakBytes() * 2 / 3}
	st, tl, err := m.PlanDecoder(16, 16, DecoderOptions{}, tight)
	if err != nil || !tl.Tiled || st.PeakBytes() > tight.Budget || tl.Overlap < 1 || tl.Overlap >= tl.H {
		t.Errorf("tight budget: %+v %+v, %v", tl, st, err)
	}
	// So does a binding smaller than the largest activation.
	small := Limits{}
	small.MaxStorageBufferRange = 1 << 20 // the whole decode's 32x128x128 upsample needs 2 MiB
	if tl, err := m.chooseTiling(16, 16, DecoderOptions{}, small); err != nil || !tl.Tiled || tl.H > 8 {
		t.Errorf("small binding: %+v, %v", tl, err)
	}
	if _, err := m.chooseTiling(16, 16, DecoderOptions{}, Limits{Budget: 1000}); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("impossible budget: %v", err)
	}
	if tl, _ := m.chooseTiling(16, 16, DecoderOptions{Tile: 8, Overlap: 2}, none); !tl.Tiled || tl.H != 8 || tl.Overlap != 2 {
		t.Errorf("forced tile: %+v", tl)
	}
}

// The device-free plans are what compiling allocates.
func TestPlanMatchesCompile(t *testing.T) {
	dev := device(t)
	m := fixtureModel(t, "sd-tiny")
	lim := DeviceLimits(dev.Info())
	o := UNetOptions{Batch: 2, Height: 16, Width: 16, Context: LayerKeysValues}
	plan, err := m.PlanUNet(o, lim)
	if err != nil {
		t.Fatal(err)
	}
	u, err := m.CompileUNet(dev, o)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	got := u.Stats()
	// Everything but the dispatch count, groupnorm's scratch included.
	got.Dispatches = 0
	if plan != got {
		t.Errorf("plan %+v, compiled %+v", plan, got)
	}
	got = u.Stats()
	if got.Dispatches == 0 {
		t.Error("no dispatches recorded")
	}
}

// Tiled decoding on the device reconstructs an image about as well as the
// whole decode: sd-shapes (a trained VAE) encodes one of the concept
// images, and both decodes are compared with it. The tiles' group norms see
// only their tile, so tiling is close to, not equal to, the whole decode.
func TestTiledDecodeGPU(t *testing.T) {
	dev := device(t)
	m := fixtureModel(t, "sd-shapes")
	p, err := fixtures.Path("sd-shapes", "concept-star", "00.png")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	const side = 64
	x := make([]float32, 3*side*side)
	for y := 0; y < side; y++ {
		for xx := 0; xx < side; xx++ {
			r, g, b, _ := img.At(xx, y).RGBA()
			for c, v := range []uint32{r, g, b} {
				x[(c*side+y)*side+xx] = float32(v>>8)/127.5 - 1
			}
		}
	}
	e, err := m.CompileEncoder(dev, side, side)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	post, err := e.Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	lat := side / m.LatentFactor()
	decode := func(o DecoderOptions) []float32 {
		d, err := m.CompileDecoder(dev, lat, lat, o)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if d.Tiling().Tiled != (o.Tile > 0) {
			t.Fatalf("tiling %+v for options %+v", d.Tiling(), o)
		}
		out, err := d.Decode(post.Mean)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	whole := graph.RelErr(decode(DecoderOptions{}), x)
	tiled := graph.RelErr(decode(DecoderOptions{Tile: 10, Overlap: 4}), x)
	t.Logf("reconstruction error: whole %.3g, tiled %.3g", whole, tiled)
	if !(whole < 0.3) || !(tiled < whole*1.25) {
		t.Errorf("reconstruction error: whole %.3g, tiled %.3g", whole, tiled)
	}
}

// WriteRandom writes a folder Open accepts, the same bytes for the same
// seed; the sd-tiny configs keep it small.
func TestWriteRandom(t *testing.T) {
	src, err := fixtures.Path("sd-tiny", "model")
	if err != nil {
		t.Fatal(err)
	}
	f, err := weights.OpenFolder(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := weights.Configs{TextEncoder: f.TextEncoder, UNet: f.UNet, VAE: f.VAE, Scheduler: f.Scheduler}
	root := t.TempDir()
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
	for _, x := range []struct {
		dir  string
		seed uint64
	}{{a, 1}, {b, 1}, {c, 2}} {
		if err := WriteRandom(x.dir, cfg, x.seed); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteRandom(a, cfg, 1); err == nil {
		t.Error("overwrote an existing folder")
	}
	read := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(read(a), read(b)) || bytes.Equal(read(a), read(c)) {
		t.Error("weights do not follow the seed")
	}
	m, err := Open(a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.UNet.BlockOutChannels[2] != 64 || m.Tokenizer.VocabSize() != 514 {
		t.Errorf("model %+v, vocab %d", m.UNet, m.Tokenizer.VocabSize())
	}
	ids, _, _ := m.Tokenizer.EncodePadded("a cat")
	if ids[0] != 512 || ids[1] != 'a'-'!'+256 || ids[5] != 513 {
		t.Errorf("byte tokenizer ids %v", ids[:6])
	}
	v, _, err := m.unet.Float32("conv_in.weight")
	if err != nil {
		t.Fatal(err)
	}
	bound := float32(1 / 6.0) // 1/sqrt(4*3*3)
	for _, x := range v {
		if x < -bound*1.001 || x > bound*1.001 {
			t.Fatalf("conv_in.weight value %g outside ±%g", x, bound)
		}
	}
	if _, err := Architecture("sd15"); err != nil {
		t.Error(err)
	}
	if _, err := Architecture("sdxl"); err == nil {
		t.Error("sdxl accepted")
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 3 {
		t.Errorf("left behind: %v", entries)
	}

	// SD 2.x traits: linear projections, per-block head counts, a gelu
	// text encoder and v-prediction load and build as well.
	sd2 := cfg
	sd2.UNet.UseLinearProjection = true
	sd2.UNet.AttentionHeadDim = []int{2, 4, 8, 8}
	sd2.UNet.NumAttentionHeads = []int{2, 4, 8, 8}
	sd2.TextEncoder.HiddenAct = "gelu"
	sd2.Scheduler.PredictionType = "v_prediction"
	d2 := filepath.Join(root, "sd2")
	if err := WriteRandom(d2, sd2, 3); err != nil {
		t.Fatal(err)
	}
	m2, err := Open(d2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if !m2.UNet.UseLinearProjection || m2.UNet.Heads[1] != 4 || m2.Text.Act != "gelu" || m2.Sched.PredictionType != "v_prediction" {
		t.Errorf("SD 2 traits lost: %+v %+v %+v", m2.UNet, m2.Text, m2.Sched)
	}
	if _, err := m2.PlanUNet(UNetOptions{Batch: 2, Height: 16, Width: 16}, Limits{}); err != nil {
		t.Error(err)
	}
}
