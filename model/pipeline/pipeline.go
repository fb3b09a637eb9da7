// Package pipeline is Stable Diffusion text-to-image generation (diffusers'
// StableDiffusionPipeline): tokenise the prompt and the negative prompt,
// encode both in one text-encoder run, then per step one batch-2 UNet run
// (unconditional and conditional together) combined by classifier-free
// guidance and stepped by a sampler on the host, and finally the VAE
// decode to 8-bit RGB. The latents are checked for NaN/Inf after every
// step, so a numerical failure is an error naming the step, never a black
// image.
package pipeline

import (
	"errors"
	"fmt"
	"image"
	"math"
	"strings"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/vk"
)

// Samplers are the sampler names Generate accepts, the first the default.
var Samplers = []string{"dpm++2m", "ddim", "pndm", "euler_a"}

// displayNames are the sampler names A1111 shows and writes into PNGs.
var displayNames = map[string]string{
	"dpm++2m": "DPM++ 2M",
	"ddim":    "DDIM",
	"pndm":    "PNDM",
	"euler_a": "Euler a",
}

// SamplerName resolves a sampler as a user may write it: one of Samplers
// (any case), a scheduler package alias, or an A1111 display name.
func SamplerName(s string) (string, error) {
	key := strings.ToLower(strings.TrimSpace(s))
	for _, n := range Samplers {
		if key == n || key == strings.ToLower(displayNames[n]) {
			return n, nil
		}
	}
	if sch, err := scheduler.New(key, scheduler.DefaultConfig()); err == nil {
		for _, n := range Samplers {
			if sch.Name() == n {
				return n, nil
			}
		}
	}
	return "", fmt.Errorf("unknown sampler %q (want one of %s)", s, strings.Join(Samplers, ", "))
}

// DisplayName is the A1111 name of a sampler ("DPM++ 2M").
func DisplayName(sampler string) string {
	if d, ok := displayNames[sampler]; ok {
		return d
	}
	return sampler
}

// Options are one generation's settings.
type Options struct {
	Prompt, NegativePrompt string
	Steps                  int
	CFGScale               float64 // classifier-free guidance; <= 1 runs the conditional branch only
	Sampler                string  // one of Samplers ("" = dpm++2m)
	Width, Height          int     // image size in pixels
	Seed                   uint64  // initial noise and ancestral noise, as torch.Generator().manual_seed
	// Latents, when not nil, are the initial noise [1, latent, h, w]
	// instead of the seed's (scaled by the sampler's init_noise_sigma, as
	// diffusers scales latents it is given).
	Latents []float32
	// OnStep, when not nil, is called after every step with the new
	// latents; an error it returns stops the generation.
	OnStep func(s Step) error
	// Concepts, when not nil, conditions the prompt (the conditional
	// branch) per step and per cross-attention layer instead of with one
	// plain encoding: it is called once with the sampler's timesteps and
	// returns the conditioning (NeTI concepts, see model/neti). The
	// negative prompt keeps its plain encoding.
	Concepts func(timesteps []float64) (Conditioning, error)
}

// Conditioning gives, for sampler step i, every cross-attention layer's
// keys and values context for the prompt ([seq*dim] each, batch 1).
type Conditioning interface {
	Step(i int) (keys, values [][]float32, err error)
	Close() error
}

// Step describes a finished denoising step.
type Step struct {
	Index, Total int
	Timestep     float64
	Latents      []float32 // the caller must not keep or change it
}

// Result is one generated image.
type Result struct {
	Image   *image.NRGBA
	Pixels  []float32 // [3, H, W] in [0, 1] after clamping, before 8-bit rounding
	Latents []float32 // final latents
	// Warnings are harmless problems worth telling the user (a prompt
	// longer than the text encoder's window, which is truncated).
	Warnings []string
}

// Pipeline generates images with one model on one device. Compiled
// programs are kept for reuse by later generations of the same size; it is
// not safe for concurrent use.
type Pipeline struct {
	m    *sd.Model
	dev  *vk.Device
	text map[int]*sd.TextEncoder // by batch
	unet map[[4]int]*sd.UNet     // by batch, latent h, w, context mode
	dec  map[[2]int]*sd.Decoder  // by latent h, w
	// Decoder tunes the VAE decoder programs (tiling).
	Decoder sd.DecoderOptions
}

// New makes a pipeline; programs are compiled on first use.
func New(m *sd.Model, dev *vk.Device) *Pipeline {
	return &Pipeline{m: m, dev: dev, text: map[int]*sd.TextEncoder{}, unet: map[[4]int]*sd.UNet{}, dec: map[[2]int]*sd.Decoder{}}
}

// Close releases the compiled programs (not the model or the device).
func (p *Pipeline) Close() error {
	var errs []error
	for k, t := range p.text {
		errs = append(errs, t.Close())
		delete(p.text, k)
	}
	for k, u := range p.unet {
		errs = append(errs, u.Close())
		delete(p.unet, k)
	}
	for k, d := range p.dec {
		errs = append(errs, d.Close())
		delete(p.dec, k)
	}
	return errors.Join(errs...)
}

// Memory is the planned device memory of the programs a generation uses.
type Memory struct {
	Text, UNet, Decoder graph.Stats
	Tiling              sd.Tiling
}

// PeakBytes is the sum of the three programs, which stay resident
// together.
func (m Memory) PeakBytes() int64 {
	return m.Text.PeakBytes() + m.UNet.PeakBytes() + m.Decoder.PeakBytes()
}

// Plan computes the device memory of a generation without compiling or
// allocating anything (for --dry-run); lim are the device's limits.
func Plan(m *sd.Model, o Options, lim sd.Limits, dec sd.DecoderOptions) (Memory, error) {
	if err := check(m, &o); err != nil {
		return Memory{}, err
	}
	batch := batchFor(o.CFGScale)
	var mem Memory
	var err error
	if mem.Text, err = m.PlanTextEncoder(sd.TextEncoderOptions{Batch: batch}, lim); err != nil {
		return Memory{}, err
	}
	h, w := o.Height/m.LatentFactor(), o.Width/m.LatentFactor()
	if mem.UNet, err = m.PlanUNet(sd.UNetOptions{Batch: batch, Height: h, Width: w}, lim); err != nil {
		return Memory{}, err
	}
	if lim.Budget > 0 && dec.Budget == 0 {
		dec.Budget = decoderBudget(lim.Budget, mem.Text.PeakBytes()+mem.UNet.PeakBytes())
	}
	if mem.Decoder, mem.Tiling, err = m.PlanDecoder(h, w, dec, lim); err != nil {
		return Memory{}, err
	}
	return mem, nil
}

// decoderBudget is what the decoder may plan next to programs using used
// bytes of budget; at least a quarter of it, so that a tight UNet still
// leaves the decoder room for small tiles.
func decoderBudget(budget, used int64) int64 { return max(budget-used, budget/4) }

func batchFor(cfg float64) int {
	if cfg > 1 {
		return 2
	}
	return 1
}

// check validates and completes the options.
func check(m *sd.Model, o *Options) error {
	if o.Sampler == "" {
		o.Sampler = Samplers[0]
	}
	name, err := SamplerName(o.Sampler)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	o.Sampler = name
	if o.Steps < 1 || o.Steps > 1000 {
		return fmt.Errorf("pipeline: steps %d is not in 1..1000", o.Steps)
	}
	if math.IsNaN(o.CFGScale) || math.IsInf(o.CFGScale, 0) || o.CFGScale < 0 || o.CFGScale > 100 {
		return fmt.Errorf("pipeline: cfg scale %g is not in 0..100", o.CFGScale)
	}
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = m.DefaultSize(), m.DefaultSize()
	}
	if err := m.CheckSize(o.Width, o.Height); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	f := m.LatentFactor()
	if o.Latents != nil {
		if n := m.VAE.LatentChannels * (o.Height / f) * (o.Width / f); len(o.Latents) != n {
			return fmt.Errorf("pipeline: %d initial latent values for a %dx%d image (want %d: %d x %d x %d)",
				len(o.Latents), o.Width, o.Height, n, m.VAE.LatentChannels, o.Height/f, o.Width/f)
		}
		if i := firstNonFinite(o.Latents); i >= 0 {
			return fmt.Errorf("pipeline: the initial latents hold %g at index %d", o.Latents[i], i)
		}
	}
	return nil
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

func (p *Pipeline) textEncoder(batch int) (*sd.TextEncoder, error) {
	if t, ok := p.text[batch]; ok {
		return t, nil
	}
	t, err := p.m.CompileTextEncoder(p.dev, sd.TextEncoderOptions{Batch: batch})
	if err != nil {
		return nil, err
	}
	p.text[batch] = t
	return t, nil
}

// setConcepts sets step i's per-layer contexts; with guidance each layer's
// batch is [negative prompt, concept prompt].
func (p *Pipeline) setConcepts(u *sd.UNet, cond Conditioning, i int, uncond []float32) error {
	keys, values, err := cond.Step(i)
	if err != nil {
		return err
	}
	if uncond != nil {
		for l := range keys {
			keys[l] = append(append(make([]float32, 0, 2*len(uncond)), uncond...), keys[l]...)
			values[l] = append(append(make([]float32, 0, 2*len(uncond)), uncond...), values[l]...)
		}
	}
	return u.SetLayerContexts(keys, values)
}

func (p *Pipeline) unetFor(batch, h, w int, mode sd.ContextMode) (*sd.UNet, error) {
	key := [4]int{batch, h, w, int(mode)}
	if u, ok := p.unet[key]; ok {
		return u, nil
	}
	u, err := p.m.CompileUNet(p.dev, sd.UNetOptions{Batch: batch, Height: h, Width: w, Context: mode})
	if err != nil {
		return nil, err
	}
	p.unet[key] = u
	return u, nil
}

func (p *Pipeline) decoder(h, w int) (*sd.Decoder, error) {
	key := [2]int{h, w}
	if d, ok := p.dec[key]; ok {
		return d, nil
	}
	o := p.Decoder
	if o.Budget == 0 {
		// The decoder shares the device with the programs compiled so far.
		lim := sd.DeviceLimits(p.dev.Info())
		used := int64(0)
		for _, s := range p.Stats() {
			used += s.PeakBytes()
		}
		if lim.Budget > 0 {
			o.Budget = decoderBudget(lim.Budget, used)
		}
	}
	d, err := p.m.CompileDecoder(p.dev, h, w, o)
	if err != nil {
		return nil, err
	}
	p.dec[key] = d
	return d, nil
}

// Stats lists the compiled programs' planned memory and dispatch counts by
// name ("text encoder", "unet 2x64x64", "vae decoder 64x64").
func (p *Pipeline) Stats() map[string]graph.Stats {
	out := map[string]graph.Stats{}
	for b, t := range p.text {
		out[fmt.Sprintf("text encoder batch %d", b)] = (t.Stats())
	}
	for k, u := range p.unet {
		out[fmt.Sprintf("unet batch %d %dx%d", k[0], k[2], k[1])] = (u.Stats())
	}
	for k, d := range p.dec {
		name := fmt.Sprintf("vae decoder %dx%d", k[1], k[0])
		if t := d.Tiling(); t.Tiled {
			name += fmt.Sprintf(" (tiles %dx%d, overlap %d)", t.W, t.H, t.Overlap)
		}
		out[name] = (d.Stats())
	}
	return out
}

// Generate makes one image.
func (p *Pipeline) Generate(o Options) (*Result, error) {
	if err := check(p.m, &o); err != nil {
		return nil, err
	}
	m := p.m
	res := &Result{}
	sch, err := scheduler.New(o.Sampler, m.Sched)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := sch.SetTimesteps(o.Steps); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	cfg := o.CFGScale > 1
	batch := batchFor(o.CFGScale)

	// Text: [negative, prompt] as diffusers orders the CFG batch.
	prompts := []string{o.Prompt}
	if cfg {
		prompts = []string{o.NegativePrompt, o.Prompt}
	}
	if o.Concepts != nil {
		// The conditioning encodes the prompt itself (its placeholders are
		// outside the token table); only the negative prompt is plain.
		prompts = prompts[:len(prompts)-1]
	}
	ids := make([][]int, len(prompts))
	for i, s := range prompts {
		row, _, truncated := m.Tokenizer.EncodePadded(s)
		if truncated {
			what := "prompt"
			if cfg && i == 0 {
				what = "negative prompt"
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("the %s is longer than %d tokens; the rest is ignored", what, m.Tokenizer.MaxLength()-2))
		}
		for j, id := range row {
			if id < 0 || id >= m.Text.Vocab {
				return nil, fmt.Errorf("pipeline: token %d of %q has id %d, outside the text encoder's %d-token table", j, s, id, m.Text.Vocab)
			}
		}
		ids[i] = row
	}
	var cond Conditioning
	var uncond []float32 // the negative prompt's plain encoding (concepts, CFG)
	var ctx []float32
	if o.Concepts != nil {
		if cond, err = o.Concepts(sch.TimestepValues()); err != nil {
			return nil, err
		}
		defer cond.Close()
		if cfg {
			te, err := p.textEncoder(1)
			if err != nil {
				return nil, err
			}
			if uncond, err = te.Encode(ids[:1]); err != nil {
				return nil, err
			}
		}
	} else {
		te, err := p.textEncoder(batch)
		if err != nil {
			return nil, err
		}
		if ctx, err = te.Encode(ids); err != nil {
			return nil, err
		}
	}

	f := m.LatentFactor()
	h, w := o.Height/f, o.Width/f
	n := m.VAE.LatentChannels * h * w
	gen := NewGenerator(o.Seed)
	var latents []float32
	if o.Latents != nil {
		latents = append([]float32(nil), o.Latents...)
	} else {
		latents = gen.Randn(n)
	}
	if s := float32(sch.InitNoiseSigma()); s != 1 {
		for i := range latents {
			latents[i] *= s
		}
	}
	mode := sd.OneContext
	if cond != nil {
		mode = sd.LayerKeysValues
	}
	u, err := p.unetFor(batch, h, w, mode)
	if err != nil {
		return nil, err
	}
	if cond == nil {
		if err := u.SetContext(ctx); err != nil {
			return nil, err
		}
	}
	rng := gen.Normal(n)
	ts := sch.TimestepValues()
	in := make([]float32, batch*n)
	tin := make([]float32, batch)
	scale := float32(o.CFGScale)
	for i, t := range ts {
		if cond != nil {
			if err := p.setConcepts(u, cond, i, uncond); err != nil {
				return nil, fmt.Errorf("pipeline: step %d/%d: %w", i+1, len(ts), err)
			}
		}
		x := sch.ScaleModelInput(latents, i)
		for b := 0; b < batch; b++ {
			copy(in[b*n:], x)
			tin[b] = float32(t)
		}
		out, err := u.Predict(in, tin)
		if err != nil {
			return nil, fmt.Errorf("pipeline: step %d/%d: %w", i+1, len(ts), err)
		}
		noise := out
		if cfg {
			// uncond + scale*(cond - uncond), in float32 as torch does.
			noise = make([]float32, n)
			for j := range noise {
				noise[j] = out[j] + scale*(out[n+j]-out[j])
			}
		}
		if j := firstNonFinite(noise); j >= 0 {
			return nil, fmt.Errorf("pipeline: step %d/%d (timestep %g): the UNet output holds %g at index %d (a numerical failure in the model's weights or on the device)", i+1, len(ts), t, noise[j], j)
		}
		latents, _, err = sch.Step(noise, i, latents, rng)
		if err != nil {
			return nil, fmt.Errorf("pipeline: step %d/%d: %w", i+1, len(ts), err)
		}
		if j := firstNonFinite(latents); j >= 0 {
			return nil, fmt.Errorf("pipeline: step %d/%d (timestep %g): the latents hold %g at index %d after the %s step", i+1, len(ts), t, latents[j], j, o.Sampler)
		}
		if o.OnStep != nil {
			if err := o.OnStep(Step{Index: i, Total: len(ts), Timestep: t, Latents: latents}); err != nil {
				return nil, err
			}
		}
	}
	res.Latents = latents

	d, err := p.decoder(h, w)
	if err != nil {
		return nil, err
	}
	z := make([]float32, n)
	sf := m.VAE.ScalingFactor
	for i, v := range latents {
		z[i] = v / sf
	}
	img, err := d.Decode(z)
	if err != nil {
		return nil, err
	}
	if j := firstNonFinite(img); j >= 0 {
		return nil, fmt.Errorf("pipeline: the VAE decoder output holds %g at index %d", img[j], j)
	}
	res.Pixels, res.Image = toImage(img, m.VAE.OutChannels, o.Height, o.Width)
	return res, nil
}

// toImage maps the decoder output with clamp(x/2 + 0.5, 0, 1) and rounds
// to 8 bits half to even, as diffusers' numpy_to_pil does.
func toImage(x []float32, ch, h, w int) ([]float32, *image.NRGBA) {
	px := make([]float32, len(x))
	for i, v := range x {
		px[i] = min(max(v/2+0.5, 0), 1)
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for xx := 0; xx < w; xx++ {
			o := img.PixOffset(xx, y)
			for c := 0; c < 3; c++ {
				src := c
				if c >= ch {
					src = ch - 1 // a one-channel decoder gives grey
				}
				img.Pix[o+c] = uint8(math.RoundToEven(float64(px[(src*h+y)*w+xx] * 255)))
			}
			img.Pix[o+3] = 255
		}
	}
	return px, img
}
