package config

import (
	"fmt"
	"math"
)

// VAE block types.
const (
	DownEncoderBlock2D = "DownEncoderBlock2D"
	UpDecoderBlock2D   = "UpDecoderBlock2D"
)

// VAE is a diffusers AutoencoderKL config (vae/config.json).
type VAE struct {
	ClassName        string   `json:"_class_name"`
	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"`
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	SampleSize       int      `json:"-"` // image side; from sample_size (int or square pair)
	ScalingFactor    float64  `json:"scaling_factor"`
	ForceUpcast      bool     `json:"force_upcast"`
}

// DefaultVAE is AutoencoderKL() of diffusers 0.19.
func DefaultVAE() VAE {
	return VAE{
		InChannels:       3,
		OutChannels:      3,
		DownBlockTypes:   []string{DownEncoderBlock2D},
		UpBlockTypes:     []string{UpDecoderBlock2D},
		BlockOutChannels: []int{64},
		LayersPerBlock:   1,
		ActFn:            "silu",
		LatentChannels:   4,
		NormNumGroups:    32,
		SampleSize:       32,
		ScalingFactor:    0.18215,
		ForceUpcast:      true,
	}
}

// LoadVAE reads and validates a VAE config file.
func LoadVAE(path string) (VAE, error) {
	b, err := readFile(path)
	if err != nil {
		return VAE{}, fmt.Errorf("config: vae: %w", err)
	}
	c, err := ParseVAE(b)
	if err != nil {
		return VAE{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// ParseVAE parses and validates a VAE config.
func ParseVAE(b []byte) (VAE, error) {
	c := DefaultVAE()
	var extra struct {
		SampleSize sizeValue `json:"sample_size"`
	}
	extra.SampleSize = sizeValue(c.SampleSize)
	raw, err := decode(b, &c)
	if err == nil {
		_, err = decode(b, &extra)
	}
	if err != nil {
		return VAE{}, fmt.Errorf("config: vae: %w", err)
	}
	c.SampleSize = int(extra.SampleSize)
	if isNull(raw, "scaling_factor") {
		return VAE{}, fmt.Errorf("config: vae: scaling_factor is null")
	}
	if err := c.Validate(); err != nil {
		return VAE{}, err
	}
	return c, nil
}

// Validate checks the config describes an AutoencoderKL this engine can
// build.
func (c VAE) Validate() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("config: vae: "+format, a...)
	}
	if c.ClassName != "" && c.ClassName != "AutoencoderKL" {
		return fail("_class_name %q is not AutoencoderKL", c.ClassName)
	}
	n := len(c.BlockOutChannels)
	if n < 1 || n > maxBlocks {
		return fail("%d blocks, want 1..%d", n, maxBlocks)
	}
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return fail("down_block_types (%d), up_block_types (%d) and block_out_channels (%d) must have the same length",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	}
	for i := range n {
		if c.DownBlockTypes[i] != DownEncoderBlock2D {
			return fail("down_block_types[%d] %q is not supported (want %s)", i, c.DownBlockTypes[i], DownEncoderBlock2D)
		}
		if c.UpBlockTypes[i] != UpDecoderBlock2D {
			return fail("up_block_types[%d] %q is not supported (want %s)", i, c.UpBlockTypes[i], UpDecoderBlock2D)
		}
	}
	for _, r := range []struct {
		what        string
		v, min, max int
	}{
		{"in_channels", c.InChannels, 1, maxChannels},
		{"out_channels", c.OutChannels, 1, maxChannels},
		{"layers_per_block", c.LayersPerBlock, 1, maxLayers},
		{"latent_channels", c.LatentChannels, 1, maxChannels},
		{"norm_num_groups", c.NormNumGroups, 1, maxChannels},
		{"sample_size", c.SampleSize, 0, 1 << 20},
	} {
		if err := checkRange(r.what, r.v, r.min, r.max); err != nil {
			return fail("%v", err)
		}
	}
	for i, ch := range c.BlockOutChannels {
		if err := checkRange(fmt.Sprintf("block_out_channels[%d]", i), ch, 1, maxChannels); err != nil {
			return fail("%v", err)
		}
		if ch%c.NormNumGroups != 0 {
			return fail("block_out_channels[%d] %d is not divisible by norm_num_groups %d", i, ch, c.NormNumGroups)
		}
	}
	if c.ActFn != "silu" {
		return fail("act_fn %q is not supported (want silu)", c.ActFn)
	}
	if math.IsNaN(c.ScalingFactor) || math.IsInf(c.ScalingFactor, 0) || c.ScalingFactor <= 0 {
		return fail("scaling_factor %g is not a positive number", c.ScalingFactor)
	}
	return nil
}

// DownsampleFactor is the ratio of image side to latent side.
func (c VAE) DownsampleFactor() int { return 1 << (len(c.BlockOutChannels) - 1) }
