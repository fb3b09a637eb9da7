// Package vae builds diffusers' AutoencoderKL (the Stable Diffusion VAE)
// encoder and decoder on the graph op set, with diffusers' module names.
package vae

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/graph"
)

// Config is the part of the AutoencoderKL config the builder needs.
type Config struct {
	InChannels, OutChannels int
	BlockOutChannels        []int
	LayersPerBlock          int
	LatentChannels          int
	NormGroups              int
	ScalingFactor           float32
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.BlockOutChannels) == 0 || c.LayersPerBlock <= 0 || c.LatentChannels <= 0 || c.NormGroups <= 0 || c.InChannels <= 0 || c.OutChannels <= 0 {
		return fmt.Errorf("vae: bad config %+v", c)
	}
	for _, ch := range c.BlockOutChannels {
		if ch%c.NormGroups != 0 {
			return fmt.Errorf("vae: %d channels not divisible into %d groups", ch, c.NormGroups)
		}
	}
	return nil
}

// Factor is the spatial downsampling of the latent (8 for SD).
func (c Config) Factor() int { return 1 << (len(c.BlockOutChannels) - 1) }

const eps = 1e-6 // every norm in the SD VAE

type builder struct {
	b *graph.Builder
	c Config
}

func (v builder) conv(name string, x *graph.Tensor, in, out, k int, p graph.Conv2dParams) *graph.Tensor {
	defer v.b.Scope(name)()
	return v.b.Conv2d(x, v.b.Weight("weight", out, in, k, k), v.b.Weight("bias", out), p)
}

func (v builder) norm(name string, x *graph.Tensor, ch int, silu bool) *graph.Tensor {
	defer v.b.Scope(name)()
	return v.b.GroupNorm(x, v.b.Weight("weight", ch), v.b.Weight("bias", ch), v.c.NormGroups, eps, silu)
}

func (v builder) resnet(name string, x *graph.Tensor, in, out int) *graph.Tensor {
	defer v.b.Scope(name)()
	h := v.norm("norm1", x, in, true)
	h = v.conv("conv1", h, in, out, 3, graph.Pad(1, 1))
	h = v.norm("norm2", h, out, true)
	h = v.conv("conv2", h, out, out, 3, graph.Pad(1, 1))
	if in != out {
		x = v.conv("conv_shortcut", x, in, out, 1, graph.Pad(1, 0))
	}
	return v.b.Add(x, h)
}

// attention is the mid block's single-head spatial self-attention.
func (v builder) attention(name string, x *graph.Tensor, ch int) *graph.Tensor {
	b := v.b
	defer b.Scope(name)()
	n, hh, ww := x.Dim(0), x.Dim(2), x.Dim(3)
	h := v.norm("group_norm", x, ch, false)
	h = b.Reshape(b.Permute(b.Reshape(h, n, ch, hh*ww), 0, 2, 1), n, hh*ww, ch)
	lin := func(name string, x *graph.Tensor) *graph.Tensor {
		defer b.Scope(name)()
		return b.Linear(x, b.Weight("weight", ch, ch), b.Weight("bias", ch))
	}
	a := singleHeadAttention(b, lin("to_q", h), lin("to_k", h), lin("to_v", h), ch)
	a = lin("to_out.0", a)
	a = b.Reshape(b.Permute(a, 0, 2, 1), n, ch, hh, ww)
	return b.Add(a, x)
}

// singleHeadAttention is softmax(q k^T / sqrt(ch)) v. The SD VAE's one head
// is as wide as its top block (512), past the fused kernel's limit; there
// the score matrix is stored ([n, hw, hw]: 64 MiB at a 64x64 latent), and
// latents too large for that are decoded in tiles by the caller.
func singleHeadAttention(b *graph.Builder, q, k, v *graph.Tensor, ch int) *graph.Tensor {
	if ch <= graph.MaxHeadDim {
		return b.Attention(q, k, v, 1, 0, false)
	}
	s := b.Scale(b.MatMul(q, k, false, true), float32(1/math.Sqrt(float64(ch))))
	return b.MatMul(b.Softmax(s), v, false, false)
}

func (v builder) mid(name string, x *graph.Tensor, ch int) *graph.Tensor {
	x = v.resnet(name+".resnets.0", x, ch, ch)
	x = v.attention(name+".attentions.0", x, ch)
	return v.resnet(name+".resnets.1", x, ch, ch)
}

// Taps receives intermediate outputs by diffusers module name.
type Taps map[string]*graph.Tensor

func (t Taps) set(name string, x *graph.Tensor) {
	if t != nil {
		t[name] = x
	}
}

// Decode adds the decoder to b: z [n, latent, h, w] (already divided by
// the scaling factor) -> image [n, out, h*f, w*f] in [-1, 1] (unclamped).
func Decode(b *graph.Builder, c Config, z *graph.Tensor, taps Taps) *graph.Tensor {
	if err := c.Validate(); err != nil {
		b.Errorf("%v", err)
		return z
	}
	v := builder{b, c}
	nb := len(c.BlockOutChannels)
	top := c.BlockOutChannels[nb-1]
	h := v.conv("post_quant_conv", z, c.LatentChannels, c.LatentChannels, 1, graph.Pad(1, 0))
	taps.set("post_quant_conv", h)
	defer b.Scope("decoder")()
	h = v.conv("conv_in", h, c.LatentChannels, top, 3, graph.Pad(1, 1))
	taps.set("decoder.conv_in", h)
	h = v.mid("mid_block", h, top)
	taps.set("decoder.mid_block", h)
	ch := top
	for i := 0; i < nb; i++ {
		out := c.BlockOutChannels[nb-1-i]
		name := fmt.Sprintf("up_blocks.%d", i)
		for j := 0; j <= c.LayersPerBlock; j++ {
			h = v.resnet(fmt.Sprintf("%s.resnets.%d", name, j), h, ch, out)
			ch = out
		}
		if i != nb-1 {
			h = v.conv(name+".upsamplers.0.conv", b.Upsample2x(h), out, out, 3, graph.Pad(1, 1))
		}
		taps.set("decoder."+name, h)
	}
	h = v.norm("conv_norm_out", h, ch, true)
	return v.conv("conv_out", h, ch, c.OutChannels, 3, graph.Pad(1, 1))
}

// Encode adds the encoder to b: x [n, in, H, W] in [-1, 1] -> the moments
// [n, 2*latent, H/f, W/f] after quant_conv (mean, then logvar).
func Encode(b *graph.Builder, c Config, x *graph.Tensor, taps Taps) *graph.Tensor {
	if err := c.Validate(); err != nil {
		b.Errorf("%v", err)
		return x
	}
	v := builder{b, c}
	nb := len(c.BlockOutChannels)
	h := func() *graph.Tensor {
		defer b.Scope("encoder")()
		h := v.conv("conv_in", x, c.InChannels, c.BlockOutChannels[0], 3, graph.Pad(1, 1))
		ch := c.BlockOutChannels[0]
		for i := 0; i < nb; i++ {
			out := c.BlockOutChannels[i]
			name := fmt.Sprintf("down_blocks.%d", i)
			for j := 0; j < c.LayersPerBlock; j++ {
				h = v.resnet(fmt.Sprintf("%s.resnets.%d", name, j), h, ch, out)
				ch = out
			}
			if i != nb-1 {
				// diffusers pads right and bottom by one, then convolves
				// with stride 2 and no padding.
				p := graph.Conv2dParams{StrideH: 2, StrideW: 2, PadBottom: 1, PadRight: 1}
				h = v.conv(name+".downsamplers.0.conv", h, out, out, 3, p)
			}
			taps.set("encoder."+name, h)
		}
		h = v.mid("mid_block", h, ch)
		taps.set("encoder.mid_block", h)
		h = v.norm("conv_norm_out", h, ch, true)
		h = v.conv("conv_out", h, ch, 2*c.LatentChannels, 3, graph.Pad(1, 1))
		taps.set("encoder.conv_out", h)
		return h
	}()
	h = v.conv("quant_conv", h, 2*c.LatentChannels, 2*c.LatentChannels, 1, graph.Pad(1, 0))
	taps.set("quant_conv", h)
	return h
}
