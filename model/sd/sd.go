// Package sd opens a Stable Diffusion 1.x / 2.x model (a diffusers folder or
// a single-file CompVis checkpoint) and compiles its parts into device
// programs: the CLIP text encoder, the UNet (one shared context, or a key and
// a value source per cross-attention layer, as NeTI needs) and the VAE
// decoder and encoder, with tiled decoding when a full-size decode would not
// fit the device.
//
// A Model holds configs, the tokenizer and open weight stores; it never
// touches the device until a Compile* call, so it also serves memory
// planning (--dry-run) on machines without enough device memory.
package sd

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/builtin"
	"github.com/neti-project/neti/model/clip"
	"github.com/neti-project/neti/model/config"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/model/tokenizer"
	"github.com/neti-project/neti/model/unet"
	"github.com/neti-project/neti/model/vae"
	"github.com/neti-project/neti/model/weights"
	"github.com/neti-project/neti/plugin"
	"github.com/neti-project/neti/vk"
)

// Model is an opened model: validated configs converted for the graph
// builders, the tokenizer, and weight stores whose every tensor was checked
// against the configs' expected shapes.
type Model struct {
	Name string // shown to users and written into PNG metadata
	Path string // the folder or file it was opened from

	Text  clip.Config
	UNet  unet.Config
	VAE   vae.Config
	Sched scheduler.Config
	// SampleSize is the native latent side (unet sample_size; 0 if unknown).
	SampleSize int

	Tokenizer *tokenizer.Tokenizer

	// Weights is the storage precision of the programs this model
	// compiles (graph.WeightsF16, the default: weights, and the
	// activations of inference programs, stored as float16 where the
	// device has 16-bit storage, math in fp32; graph.WeightsF32:
	// everything fp32, as the fixture comparisons need for fp32 reference
	// models).
	Weights string
	// Activations overrides the activation storage of inference programs.
	// "" chooses by device: float16 with fp16 weights on GPUs, float32 on
	// CPU devices, where fp16 storage saves no scarce memory, runs each
	// step no faster and makes lavapipe compile pipelines much longer on
	// first use (the built-in model's generation with an empty Mesa shader
	// cache: 119 s against 71 with fp32 activations); float32 with fp32
	// weights.
	Activations string
	// Profile records a GPU timestamp after every op of the programs the
	// model compiles, for UNet.Profile (benchmarks and tuning).
	Profile bool

	text, unet, vae weights.Store
	closers         []func() error
}

// GraphOptions are the compile options of the model's inference programs
// on a device with limits l: with fp16 weights the activations are stored
// as float16 too, except on CPU devices (see Activations).
func (m *Model) GraphOptions(l graph.Limits) graph.Options {
	o := m.TrainingOptions()
	switch {
	case m.Activations != "":
		o.Activations = m.Activations
	case o.Weights == graph.WeightsF16 && !l.CPU:
		o.Activations = graph.ActivationsF16
	}
	return o
}

// CompileOptions are GraphOptions for programs compiled on dev.
func (m *Model) CompileOptions(dev *vk.Device) graph.Options {
	return m.GraphOptions(graph.LimitsOf(dev.Info()))
}

// TrainingOptions are the compile options of programs that compute
// gradients: fp16 weights where chosen, but fp32 activations, because
// gradients stored as float16 without loss scaling would underflow (and
// the gradient kernels are fp32 anyway).
func (m *Model) TrainingOptions() graph.Options {
	w := m.Weights
	if w == "" {
		w = graph.WeightsF16
	}
	return graph.Options{Weights: w, Activations: graph.ActivationsF32, Profile: m.Profile}
}

// Options tune Open.
type Options struct {
	// TokenizerDir holds vocab.json and merges.txt for a single-file
	// checkpoint, which carries no tokenizer. Empty: a tokenizer/ folder
	// next to the file. Ignored for diffusers folders.
	TokenizerDir string
	// Name overrides the model name (default: the folder or file name).
	Name string
	// Weights sets Model.Weights ("": graph.WeightsF16).
	Weights string
}

// Open opens a diffusers folder or a single-file checkpoint (.safetensors,
// .ckpt) and checks every weight tensor's presence and shape against the
// model's configs, so a broken model fails here with one error listing the
// problems, not halfway through a generation.
func Open(path string, opts Options) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sd: open model: %w", err)
	}
	var m *Model
	if st.IsDir() {
		m, err = openFolder(path)
	} else {
		m, err = openSingle(path, opts.TokenizerDir)
	}
	if err != nil {
		return nil, err
	}
	if opts.Name != "" {
		m.Name = opts.Name
	}
	switch opts.Weights {
	case "", graph.WeightsF16, graph.WeightsF32:
		m.Weights = opts.Weights
	default:
		m.Close()
		return nil, fmt.Errorf("sd: weight precision %q: want %q or %q", opts.Weights, graph.WeightsF16, graph.WeightsF32)
	}
	return m, nil
}

// OpenBuiltin opens the embedded sd-shapes model, extracting it below
// cacheRoot (see builtin.Dir) on first use.
func OpenBuiltin(cacheRoot string) (*Model, error) {
	dir, err := builtin.Dir(cacheRoot)
	if err != nil {
		return nil, fmt.Errorf("sd: built-in model: %w", err)
	}
	return Open(dir, Options{Name: builtin.Name})
}

func openFolder(dir string) (m *Model, err error) {
	f, err := weights.OpenFolder(dir)
	if err != nil {
		return nil, fmt.Errorf("sd: %w", err)
	}
	m = &Model{Name: filepath.Base(filepath.Clean(dir)), Path: dir}
	opened := m // m is nil on the error returns
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if err := m.setConfigs(f.TextEncoder, f.UNet, f.VAE); err != nil {
		return nil, fmt.Errorf("sd: %s: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, weights.Scheduler, "scheduler_config.json"))
	if err != nil {
		return nil, fmt.Errorf("sd: %w", err)
	}
	if m.Sched, err = scheduler.ParseConfig(b); err != nil {
		return nil, fmt.Errorf("sd: %s: %w", dir, err)
	}
	if m.Tokenizer, err = tokenizer.Load(f.TokenizerDir); err != nil {
		return nil, fmt.Errorf("sd: %w", err)
	}
	stores := []*weights.Store{&m.text, &m.unet, &m.vae}
	for i, comp := range []string{weights.TextEncoder, weights.UNet, weights.VAE} {
		s, err := f.Weights(comp)
		if err != nil {
			return nil, fmt.Errorf("sd: %w", err)
		}
		*stores[i] = s
		m.closers = append(m.closers, s.Close)
		e, err := f.Expect(comp)
		if err != nil {
			return nil, fmt.Errorf("sd: %w", err)
		}
		if err := e.Check(s); err != nil {
			return nil, fmt.Errorf("sd: %s: %w", dir, err)
		}
	}
	return m, nil
}

func openSingle(path, tokDir string) (m *Model, err error) {
	if tokDir == "" {
		tokDir = filepath.Join(filepath.Dir(path), "tokenizer")
		if _, err := os.Stat(filepath.Join(tokDir, "vocab.json")); err != nil {
			return nil, fmt.Errorf("sd: %s is a single-file checkpoint, which holds no tokenizer: give a CLIP tokenizer folder (vocab.json, merges.txt), or put one in %s", path, tokDir)
		}
	}
	sf, err := weights.OpenSingleFile(path)
	if err != nil {
		return nil, fmt.Errorf("sd: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	m = &Model{Name: name, Path: path, text: sf.TextEncoder, unet: sf.UNet, vae: sf.VAE, closers: []func() error{sf.Close}}
	opened := m // m is nil on the error returns
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if err := m.setConfigs(sf.Config.TextEncoder, sf.Config.UNet, sf.Config.VAE); err != nil {
		return nil, fmt.Errorf("sd: %s: %w", path, err)
	}
	m.Sched = sd15Scheduler()
	if m.Tokenizer, err = tokenizer.Load(tokDir); err != nil {
		return nil, fmt.Errorf("sd: %w", err)
	}
	return m, nil
}

// FromConfigs is a model with configs and no weights, for planning memory
// of architectures whose weights are not at hand (Compile* calls fail).
func FromConfigs(name string, c weights.Configs) (*Model, error) {
	m := &Model{Name: name, Sched: sd15Scheduler()}
	if err := m.setConfigs(c.TextEncoder, c.UNet, c.VAE); err != nil {
		return nil, fmt.Errorf("sd: %s: %w", name, err)
	}
	return m, nil
}

// SeqLen is the number of tokens per prompt (the tokenizer's frame, 77).
func (m *Model) SeqLen() int {
	if m.Tokenizer == nil {
		return tokenizer.DefaultMaxLength
	}
	return m.Tokenizer.MaxLength()
}

// sd15Scheduler is SD 1.x's scheduler_config.json for single files. The
// published file predates timestep_spacing, so each sampler keeps its own
// default spacing, as diffusers does with it.
func sd15Scheduler() scheduler.Config {
	c := scheduler.DefaultConfig()
	c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, "scaled_linear"
	c.StepsOffset = 1
	c.SkipPRKSteps = true
	return c
}

// setConfigs converts the parsed diffusers configs to the builders' configs,
// refusing the few config values the builders do not implement.
func (m *Model) setConfigs(t config.CLIPText, u config.UNet, v config.VAE) error {
	var err error
	if m.Text, err = TextConfig(t); err != nil {
		return err
	}
	if m.UNet, err = UNetConfig(u); err != nil {
		return err
	}
	if m.VAE, err = VAEConfig(v); err != nil {
		return err
	}
	m.SampleSize = u.SampleSize
	if m.UNet.CrossAttentionDim != m.Text.Hidden {
		return fmt.Errorf("unet cross_attention_dim %d does not match the text encoder's hidden_size %d", m.UNet.CrossAttentionDim, m.Text.Hidden)
	}
	if m.UNet.InChannels != m.VAE.LatentChannels || m.UNet.OutChannels != m.VAE.LatentChannels {
		return fmt.Errorf("unet in/out channels %d/%d do not match the vae's %d latent channels", m.UNet.InChannels, m.UNet.OutChannels, m.VAE.LatentChannels)
	}
	return nil
}

// TextConfig converts a transformers CLIPTextConfig.
func TextConfig(c config.CLIPText) (clip.Config, error) {
	if err := c.Validate(); err != nil {
		return clip.Config{}, err
	}
	out := clip.FromConfig(c)
	return out, out.Validate()
}

// UNetConfig converts a diffusers UNet2DConditionModel config, refusing
// the values package config accepts but the builder does not apply.
func UNetConfig(c config.UNet) (unet.Config, error) {
	if err := c.Validate(); err != nil {
		return unet.Config{}, err
	}
	switch {
	case c.CenterInputSample:
		return unet.Config{}, fmt.Errorf("config: unet: center_input_sample is not supported")
	case c.MidBlockScaleFactor != 1:
		return unet.Config{}, fmt.Errorf("config: unet: mid_block_scale_factor %g is not supported (want 1)", c.MidBlockScaleFactor)
	}
	out, err := unet.FromConfig(c)
	if err != nil {
		return unet.Config{}, err
	}
	return out, out.Validate()
}

// VAEConfig converts a diffusers AutoencoderKL config.
func VAEConfig(c config.VAE) (vae.Config, error) {
	if err := c.Validate(); err != nil {
		return vae.Config{}, err
	}
	out := vae.FromConfig(c)
	return out, out.Validate()
}

// Close releases the weight files.
func (m *Model) Close() error {
	var first error
	for _, c := range m.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	m.closers = nil
	return first
}

// LatentFactor is the image side per latent side (8 for SD, 4 for sd-shapes).
func (m *Model) LatentFactor() int { return m.VAE.Factor() }

// SizeMultiple is what image sides must be a multiple of: the VAE factor
// times the UNet's total downsampling, since the UNet's skip connections
// need every level's size to halve exactly.
func (m *Model) SizeMultiple() int {
	return m.LatentFactor() << (len(m.UNet.BlockOutChannels) - 1)
}

// DefaultSize is the image side the model was trained at (512 for SD 1.5).
func (m *Model) DefaultSize() int {
	if m.SampleSize > 0 {
		return m.SampleSize * m.LatentFactor()
	}
	return 64 * m.LatentFactor()
}

// CheckSize explains why an image size cannot be generated, or returns nil.
func (m *Model) CheckSize(width, height int) error {
	mult := m.SizeMultiple()
	for _, d := range []struct {
		name string
		v    int
	}{{"width", width}, {"height", height}} {
		switch {
		case d.v <= 0:
			return fmt.Errorf("%s %d must be positive", d.name, d.v)
		case d.v > 1<<14:
			return fmt.Errorf("%s %d is larger than %d", d.name, d.v, 1<<14)
		case d.v%8 != 0:
			return fmt.Errorf("%s %d is not a multiple of 8", d.name, d.v)
		case d.v%mult != 0:
			return fmt.Errorf("%s %d is not a multiple of %d (for this model: VAE factor %d x UNet downsampling %d)",
				d.name, d.v, mult, m.LatentFactor(), mult/m.LatentFactor())
		}
	}
	return nil
}

// source is a graph weight source over a store, checking shapes.
func source(component string, s weights.Store) graph.WeightSource {
	return func(name string, shape []int) ([]float32, error) {
		if s == nil {
			return nil, fmt.Errorf("%s: the model has no weights (made from configs for planning)", component)
		}
		v, got, err := s.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", component, err)
		}
		if !slices.Equal(got, shape) {
			return nil, fmt.Errorf("%s: %s: file has shape %v, the model needs %v", component, name, got, shape)
		}
		return v, nil
	}
}

// TextWeights, UNetWeights and VAEWeights are the weight sources of the
// three components, for graphs a caller builds itself (NeTI, training).
func (m *Model) TextWeights() graph.WeightSource { return source("text_encoder", m.text) }

// UNetWeights is the UNet's weight source.
func (m *Model) UNetWeights() graph.WeightSource { return source("unet", m.unet) }

// VAEWeights is the VAE's weight source.
func (m *Model) VAEWeights() graph.WeightSource { return source("vae", m.vae) }

// Fingerprint identifies the text encoder a concept is made for: its
// width, depth, vocabulary and a hash of its token-embedding table (which
// differs between SD 1.x and 2.x and between fine-tunes of the text
// encoder). The hash is the first 16 hex digits of the SHA-256 of the
// table's float32 values (little-endian, row-major), as NeTI training
// (model/neti) computes it, so concept files from either agree.
func (m *Model) Fingerprint() (plugin.BaseModel, error) {
	if m.text == nil {
		return plugin.BaseModel{}, fmt.Errorf("sd: fingerprint: the model has no weights")
	}
	v, shape, err := m.text.Float32(tokenEmbedding)
	if err != nil {
		return plugin.BaseModel{}, fmt.Errorf("sd: fingerprint: %w", err)
	}
	if len(shape) != 2 || shape[0] != m.Text.Vocab || shape[1] != m.Text.Hidden {
		return plugin.BaseModel{}, fmt.Errorf("sd: fingerprint: %s has shape %v, want [%d %d]", tokenEmbedding, shape, m.Text.Vocab, m.Text.Hidden)
	}
	h := sha256.New()
	buf := make([]byte, 0, 1<<16)
	for _, x := range v {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		if len(buf) == cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	return plugin.BaseModel{
		TextWidth: m.Text.Hidden, TextLayers: m.Text.Layers, VocabSize: m.Text.Vocab,
		Hash: hex.EncodeToString(h.Sum(nil))[:16],
	}, nil
}

// tokenEmbedding is the text encoder's token table's weight name.
const tokenEmbedding = "text_model.embeddings.token_embedding.weight"
