package sd

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/clip"
	"github.com/neti-project/neti/model/unet"
	"github.com/neti-project/neti/model/vae"
	"github.com/neti-project/neti/vk"
)

// Input and output names of the compiled programs, for callers that set
// inputs themselves.
const (
	InIDs     = "ids"     // text encoder: [batch, seq] token ids as floats
	InInject  = "inject"  // text encoder: [batch, seq, hidden] replacement token embeddings
	InMask    = "mask"    // text encoder: [batch, seq, 1], 1 where inject replaces the token
	OutHidden = "hidden"  // text encoder: last_hidden_state (the SD conditioning)
	OutPreLN  = "pre_ln"  // text encoder: encoder output before final_layer_norm
	InSample  = "sample"  // UNet: [batch, in, h, w]
	InTime    = "t"       // UNet: [batch] timesteps
	InContext = "context" // UNet, OneContext: [batch, seq, dim]
	OutNoise  = "noise"   // UNet: [batch, out, h, w]
	InLatent  = "z"       // VAE decoder: [1, latent, h, w], already divided by the scaling factor
	OutImage  = "image"   // VAE decoder: [1, out, H, W] in about [-1, 1]
	InImage   = "x"       // VAE encoder: [1, in, H, W] in [-1, 1]
	OutMoment = "moments" // VAE encoder: [1, 2*latent, h, w]: mean, then logvar
)

// KeyInput is the UNet input holding cross-attention layer i's key source
// (and its value source too under LayerContexts).
func KeyInput(i int) string { return fmt.Sprintf("keys.%d", i) }

// ValueInput is the UNet input holding layer i's value source under
// LayerKeysValues.
func ValueInput(i int) string { return fmt.Sprintf("values.%d", i) }

// TextEncoderOptions shape a text encoder program.
type TextEncoderOptions struct {
	Batch int // prompts per run (2 for negative + positive)
	// Inject adds the InInject and InMask inputs (textual inversion, NeTI).
	Inject bool
}

// TextEncoder is a compiled CLIP text encoder.
type TextEncoder struct {
	p          *graph.Program
	batch, seq int
	hidden     int
	inject     bool
}

func (m *Model) textGraph(o TextEncoderOptions) (*graph.Graph, error) {
	if o.Batch < 1 || o.Batch > 1024 {
		return nil, fmt.Errorf("sd: text encoder batch %d is not in 1..1024", o.Batch)
	}
	seq := m.SeqLen()
	b := graph.NewBuilder()
	ids := b.Input(InIDs, o.Batch, seq)
	var inject, mask *graph.Tensor
	if o.Inject {
		inject = b.Input(InInject, o.Batch, seq, m.Text.Hidden)
		mask = b.Input(InMask, o.Batch, seq, 1)
	}
	out := clip.Build(b, m.Text, ids, inject, mask)
	b.Output(OutHidden, out.Hidden)
	b.Output(OutPreLN, out.PreLN)
	g, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("sd: text encoder: %w", err)
	}
	return g, nil
}

// CompileTextEncoder builds and compiles the text encoder.
func (m *Model) CompileTextEncoder(dev *vk.Device, o TextEncoderOptions) (*TextEncoder, error) {
	g, err := m.textGraph(o)
	if err != nil {
		return nil, err
	}
	p, err := graph.Compile(dev, g, m.TextWeights(), m.CompileOptions(dev))
	if err != nil {
		return nil, fmt.Errorf("sd: compile text encoder: %w", err)
	}
	return &TextEncoder{p: p, batch: o.Batch, seq: m.SeqLen(), hidden: m.Text.Hidden, inject: o.Inject}, nil
}

// Program is the compiled program (to set the inject inputs).
func (t *TextEncoder) Program() *graph.Program { return t.p }

// Encode runs the encoder on batch rows of token ids (each padded to the
// tokenizer's length) and returns last_hidden_state [batch, seq, hidden].
// Ids must be below the vocabulary size (callers map placeholders).
func (t *TextEncoder) Encode(ids [][]int) ([]float32, error) {
	if len(ids) != t.batch {
		return nil, fmt.Errorf("sd: text encoder: %d prompts for batch %d", len(ids), t.batch)
	}
	flat := make([]float32, 0, t.batch*t.seq)
	for i, row := range ids {
		if len(row) != t.seq {
			return nil, fmt.Errorf("sd: text encoder: prompt %d has %d ids, want %d", i, len(row), t.seq)
		}
		for _, id := range row {
			flat = append(flat, float32(id))
		}
	}
	if err := t.p.SetInput(InIDs, flat); err != nil {
		return nil, fmt.Errorf("sd: text encoder: %w", err)
	}
	if err := t.p.Run(); err != nil {
		return nil, fmt.Errorf("sd: text encoder: %w", err)
	}
	out, err := t.p.Output(OutHidden)
	if err != nil {
		return nil, fmt.Errorf("sd: text encoder: %w", err)
	}
	return out, nil
}

// SetInject sets the replacement token embeddings [batch, seq, hidden]
// and their mask [batch, seq] (1 where inject replaces the token) of an
// encoder compiled with Inject; they persist until set again.
func (t *TextEncoder) SetInject(inject, mask []float32) error {
	if !t.inject {
		return fmt.Errorf("sd: text encoder: SetInject on an encoder compiled without Inject")
	}
	if err := t.p.SetInput(InInject, inject); err != nil {
		return fmt.Errorf("sd: text encoder: %w", err)
	}
	if err := t.p.SetInput(InMask, mask); err != nil {
		return fmt.Errorf("sd: text encoder: %w", err)
	}
	return nil
}

// PreLN reads the last run's encoder output before final_layer_norm
// [batch, seq, hidden] (NeTI adds its bypass there).
func (t *TextEncoder) PreLN() ([]float32, error) {
	out, err := t.p.Output(OutPreLN)
	if err != nil {
		return nil, fmt.Errorf("sd: text encoder: %w", err)
	}
	return out, nil
}

// Stats are the program's planned memory and dispatches.
func (t *TextEncoder) Stats() graph.Stats { return t.p.Stats() }

// Close releases the program.
func (t *TextEncoder) Close() error { return t.p.Close() }

// ContextMode says how the UNet's cross-attention layers get their
// conditioning.
type ContextMode int

const (
	// OneContext: one InContext input for keys and values of every layer
	// (plain Stable Diffusion).
	OneContext ContextMode = iota
	// LayerContexts: layer i takes keys and values from KeyInput(i).
	LayerContexts
	// LayerKeysValues: layer i takes keys from KeyInput(i) and values from
	// ValueInput(i) (NeTI with its textual bypass).
	LayerKeysValues
)

// UNetOptions shape a UNet program.
type UNetOptions struct {
	Batch         int // 2 for classifier-free guidance (uncond, cond)
	Height, Width int // latent size
	Context       ContextMode
	ContextLen    int // tokens per context (0: the tokenizer's length, 77)
}

// UNet is a compiled UNet.
type UNet struct {
	p      *graph.Program
	o      UNetOptions
	layers int
	dim    int
	sample int // values per sample input
}

func (m *Model) unetGraph(o *UNetOptions) (*graph.Graph, error) {
	if o.ContextLen == 0 {
		o.ContextLen = m.SeqLen()
	}
	if o.Batch < 1 || o.Batch > 1024 || o.Height < 1 || o.Width < 1 || o.ContextLen < 1 || o.ContextLen > 1<<16 {
		return nil, fmt.Errorf("sd: unet: bad options %+v", *o)
	}
	down := 1 << (len(m.UNet.BlockOutChannels) - 1)
	if o.Height%down != 0 || o.Width%down != 0 {
		return nil, fmt.Errorf("sd: unet: latent size %dx%d is not a multiple of %d", o.Width, o.Height, down)
	}
	b := graph.NewBuilder()
	sample := b.Input(InSample, o.Batch, m.UNet.InChannels, o.Height, o.Width)
	t := b.Input(InTime, o.Batch)
	dim := m.UNet.CrossAttentionDim
	var ctx unet.Context
	switch o.Context {
	case OneContext:
		ctx = unet.Same(b.Input(InContext, o.Batch, o.ContextLen, dim))
	case LayerContexts, LayerKeysValues:
		n := m.UNet.CrossAttentionLayers()
		for i := 0; i < n; i++ {
			ctx.Keys = append(ctx.Keys, b.Input(KeyInput(i), o.Batch, o.ContextLen, dim))
			if o.Context == LayerKeysValues {
				ctx.Values = append(ctx.Values, b.Input(ValueInput(i), o.Batch, o.ContextLen, dim))
			}
		}
	default:
		return nil, fmt.Errorf("sd: unet: unknown context mode %d", o.Context)
	}
	b.Output(OutNoise, unet.Build(b, m.UNet, sample, t, ctx, nil))
	g, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("sd: unet: %w", err)
	}
	return g, nil
}

// CompileUNet builds and compiles the UNet for one batch and latent size.
func (m *Model) CompileUNet(dev *vk.Device, o UNetOptions) (*UNet, error) {
	g, err := m.unetGraph(&o)
	if err != nil {
		return nil, err
	}
	p, err := graph.Compile(dev, g, m.UNetWeights(), m.CompileOptions(dev))
	if err != nil {
		return nil, fmt.Errorf("sd: compile unet: %w", err)
	}
	return &UNet{p: p, o: o, layers: m.UNet.CrossAttentionLayers(), dim: m.UNet.CrossAttentionDim,
		sample: o.Batch * m.UNet.InChannels * o.Height * o.Width}, nil
}

// Options returns the options the UNet was compiled with.
func (u *UNet) Options() UNetOptions { return u.o }

// Layers is the number of cross-attention layers (16 for SD).
func (u *UNet) Layers() int { return u.layers }

// Program is the compiled program, for callers that set inputs by name.
func (u *UNet) Program() *graph.Program { return u.p }

// SetContext sets the shared context [batch, seq, dim] (OneContext).
func (u *UNet) SetContext(ctx []float32) error {
	if u.o.Context != OneContext {
		return fmt.Errorf("sd: unet: SetContext on a per-layer UNet")
	}
	if err := u.p.SetInput(InContext, ctx); err != nil {
		return fmt.Errorf("sd: unet: %w", err)
	}
	return nil
}

// SetLayerContexts sets one key source per cross-attention layer and,
// under LayerKeysValues, one value source per layer (values nil: unused).
func (u *UNet) SetLayerContexts(keys, values [][]float32) error {
	if u.o.Context == OneContext {
		return fmt.Errorf("sd: unet: SetLayerContexts on a single-context UNet")
	}
	if len(keys) != u.layers || (u.o.Context == LayerKeysValues) != (values != nil) || values != nil && len(values) != u.layers {
		return fmt.Errorf("sd: unet: %d key and %d value contexts for %d layers in mode %d", len(keys), len(values), u.layers, u.o.Context)
	}
	for i := range keys {
		if err := u.p.SetInput(KeyInput(i), keys[i]); err != nil {
			return fmt.Errorf("sd: unet: layer %d: %w", i, err)
		}
		if values != nil {
			if err := u.p.SetInput(ValueInput(i), values[i]); err != nil {
				return fmt.Errorf("sd: unet: layer %d: %w", i, err)
			}
		}
	}
	return nil
}

// Predict runs the UNet on sample [batch, in, h, w] with one timestep per
// batch item and the contexts set before, returning its output.
func (u *UNet) Predict(sample []float32, timesteps []float32) ([]float32, error) {
	if len(sample) != u.sample || len(timesteps) != u.o.Batch {
		return nil, fmt.Errorf("sd: unet: %d sample values and %d timesteps, want %d and %d", len(sample), len(timesteps), u.sample, u.o.Batch)
	}
	if err := u.p.SetInput(InSample, sample); err != nil {
		return nil, fmt.Errorf("sd: unet: %w", err)
	}
	if err := u.p.SetInput(InTime, timesteps); err != nil {
		return nil, fmt.Errorf("sd: unet: %w", err)
	}
	if err := u.p.Run(); err != nil {
		return nil, fmt.Errorf("sd: unet: %w", err)
	}
	out, err := u.p.Output(OutNoise)
	if err != nil {
		return nil, fmt.Errorf("sd: unet: %w", err)
	}
	return out, nil
}

// Stats are the program's planned memory and dispatches.
func (u *UNet) Stats() graph.Stats { return u.p.Stats() }

// Profile is the last Predict's GPU time per op kind, largest first (the
// model must have been compiled with Model.Profile).
func (u *UNet) Profile() ([]graph.OpTime, error) { return u.p.Profile() }

// Close releases the program.
func (u *UNet) Close() error { return u.p.Close() }

func (m *Model) decoderGraph(h, w int) (*graph.Graph, error) {
	if h < 1 || w < 1 || h > 1<<12 || w > 1<<12 {
		return nil, fmt.Errorf("sd: vae decoder: bad latent size %dx%d", w, h)
	}
	b := graph.NewBuilder()
	z := b.Input(InLatent, 1, m.VAE.LatentChannels, h, w)
	b.Output(OutImage, vae.Decode(b, m.VAE, z, nil))
	g, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("sd: vae decoder: %w", err)
	}
	return g, nil
}

func (m *Model) encoderGraph(h, w int) (*graph.Graph, error) {
	f := m.LatentFactor()
	if h < 1 || w < 1 || h%f != 0 || w%f != 0 || h > 1<<15 || w > 1<<15 {
		return nil, fmt.Errorf("sd: vae encoder: image size %dx%d is not a positive multiple of %d", w, h, f)
	}
	b := graph.NewBuilder()
	x := b.Input(InImage, 1, m.VAE.InChannels, h, w)
	b.Output(OutMoment, vae.Encode(b, m.VAE, x, nil))
	g, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("sd: vae encoder: %w", err)
	}
	return g, nil
}

// Encoder is a compiled VAE encoder for one image size.
type Encoder struct {
	p       *graph.Program
	in, lat int // values of the image and of one latent
	scale   float32
}

// CompileEncoder builds and compiles the VAE encoder for height x width
// images.
func (m *Model) CompileEncoder(dev *vk.Device, height, width int) (*Encoder, error) {
	g, err := m.encoderGraph(height, width)
	if err != nil {
		return nil, err
	}
	p, err := graph.Compile(dev, g, m.VAEWeights(), m.CompileOptions(dev))
	if err != nil {
		return nil, fmt.Errorf("sd: compile vae encoder: %w", err)
	}
	f := m.LatentFactor()
	return &Encoder{p: p, in: m.VAE.InChannels * height * width,
		lat: m.VAE.LatentChannels * (height / f) * (width / f), scale: m.VAE.ScalingFactor}, nil
}

// Posterior is the encoder's diagonal Gaussian over latents.
type Posterior struct {
	Mean, LogVar, Std []float32 // LogVar clamped to [-30, 20] as diffusers does
}

// Encode returns the latent distribution of image x [1, in, H, W] in [-1, 1].
func (e *Encoder) Encode(x []float32) (*Posterior, error) {
	if len(x) != e.in {
		return nil, fmt.Errorf("sd: vae encoder: %d values, want %d", len(x), e.in)
	}
	if err := e.p.SetInput(InImage, x); err != nil {
		return nil, fmt.Errorf("sd: vae encoder: %w", err)
	}
	if err := e.p.Run(); err != nil {
		return nil, fmt.Errorf("sd: vae encoder: %w", err)
	}
	mom, err := e.p.Output(OutMoment)
	if err != nil {
		return nil, fmt.Errorf("sd: vae encoder: %w", err)
	}
	p := &Posterior{Mean: mom[:e.lat], LogVar: make([]float32, e.lat), Std: make([]float32, e.lat)}
	for i, lv := range mom[e.lat:] {
		lv = min(max(lv, -30), 20)
		p.LogVar[i] = lv
		p.Std[i] = float32(math.Exp(float64(0.5 * lv)))
	}
	return p, nil
}

// Sample draws mean + std*eps for standard normal eps.
func (p *Posterior) Sample(eps []float32) ([]float32, error) {
	if len(eps) != len(p.Mean) {
		return nil, fmt.Errorf("sd: vae posterior: %d noise values for %d latents", len(eps), len(p.Mean))
	}
	out := make([]float32, len(eps))
	for i := range out {
		out[i] = p.Mean[i] + p.Std[i]*eps[i]
	}
	return out, nil
}

// ScalingFactor is the factor between the VAE's latents and the UNet's.
func (e *Encoder) ScalingFactor() float32 { return e.scale }

// Stats are the program's planned memory and dispatches.
func (e *Encoder) Stats() graph.Stats { return e.p.Stats() }

// Close releases the program.
func (e *Encoder) Close() error { return e.p.Close() }
