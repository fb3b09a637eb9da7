// Package unet builds diffusers' UNet2DConditionModel (Stable Diffusion 1.x
// and 2.x block structure) on the graph op set. Module and weight names are
// diffusers' (`down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k`).
//
// Every cross-attention layer can take its own key source and value source,
// in execution order (down 0-5, mid 6, up 7-15 for SD 1.x): plain SD passes
// one tensor everywhere, NeTI passes 16 key sources and 16 different value
// sources.
package unet

import (
	"fmt"

	"github.com/neti-project/neti/graph"
)

// Config is the part of the diffusers UNet config the builder needs.
type Config struct {
	InChannels, OutChannels int
	DownBlockTypes          []string // CrossAttnDownBlock2D | DownBlock2D
	UpBlockTypes            []string // UpBlock2D | CrossAttnUpBlock2D
	BlockOutChannels        []int
	LayersPerBlock          int
	Heads                   []int // attention heads per down block (diffusers' attention_head_dim in SD 1.x configs)
	CrossAttentionDim       int
	NormGroups              int
	NormEps                 float32
	UseLinearProjection     bool
	FlipSinToCos            bool
	FreqShift               float32
	TransformerLayers       int // transformer_layers_per_block (1 for SD)
}

// Validate checks the configuration describes a UNet this builder makes.
func (c Config) Validate() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0 || len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n:
		return fmt.Errorf("unet: %d block_out_channels, %d down and %d up block types", n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	case len(c.Heads) != n:
		return fmt.Errorf("unet: %d attention head counts for %d blocks", len(c.Heads), n)
	case c.LayersPerBlock <= 0 || c.NormGroups <= 0 || c.InChannels <= 0 || c.OutChannels <= 0 || c.CrossAttentionDim <= 0:
		return fmt.Errorf("unet: non-positive size in config")
	}
	for i, t := range c.DownBlockTypes {
		if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
			return fmt.Errorf("unet: unsupported down block type %q", t)
		}
		if c.BlockOutChannels[i]%c.NormGroups != 0 || c.BlockOutChannels[i]%c.Heads[i] != 0 {
			return fmt.Errorf("unet: block %d: %d channels do not divide into %d groups and %d heads", i, c.BlockOutChannels[i], c.NormGroups, c.Heads[i])
		}
	}
	for _, t := range c.UpBlockTypes {
		if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
			return fmt.Errorf("unet: unsupported up block type %q", t)
		}
	}
	return nil
}

// CrossAttentionLayers counts the cross-attention layers (16 for SD 1.x).
func (c Config) CrossAttentionLayers() int {
	n := 0
	tl := max(c.TransformerLayers, 1)
	for _, t := range c.DownBlockTypes {
		if t == "CrossAttnDownBlock2D" {
			n += c.LayersPerBlock * tl
		}
	}
	n += tl // mid block
	for _, t := range c.UpBlockTypes {
		if t == "CrossAttnUpBlock2D" {
			n += (c.LayersPerBlock + 1) * tl
		}
	}
	return n
}

// LayerNames lists the cross-attention modules in execution order.
func (c Config) LayerNames() []string {
	var names []string
	tl := max(c.TransformerLayers, 1)
	for i, t := range c.DownBlockTypes {
		if t == "CrossAttnDownBlock2D" {
			for j := 0; j < c.LayersPerBlock; j++ {
				for k := 0; k < tl; k++ {
					names = append(names, fmt.Sprintf("down_blocks.%d.attentions.%d.transformer_blocks.%d.attn2", i, j, k))
				}
			}
		}
	}
	for k := 0; k < tl; k++ {
		names = append(names, fmt.Sprintf("mid_block.attentions.0.transformer_blocks.%d.attn2", k))
	}
	for i, t := range c.UpBlockTypes {
		if t == "CrossAttnUpBlock2D" {
			for j := 0; j <= c.LayersPerBlock; j++ {
				for k := 0; k < tl; k++ {
					names = append(names, fmt.Sprintf("up_blocks.%d.attentions.%d.transformer_blocks.%d.attn2", i, j, k))
				}
			}
		}
	}
	return names
}

// Context gives each cross-attention layer its key and value sources
// ([batch, seq, cross_attention_dim]). A single-entry slice is shared by all
// layers; Values nil means values come from the keys' tensor.
type Context struct {
	Keys, Values []*graph.Tensor
}

// Same is the plain-SD context: one tensor for keys and values everywhere.
func Same(t *graph.Tensor) Context { return Context{Keys: []*graph.Tensor{t}} }

func (c Context) at(i int) (k, v *graph.Tensor) {
	pick := func(ts []*graph.Tensor) *graph.Tensor {
		if len(ts) == 1 {
			return ts[0]
		}
		return ts[i]
	}
	k = pick(c.Keys)
	v = k
	if c.Values != nil {
		v = pick(c.Values)
	}
	return k, v
}

// Taps, when not nil, receives intermediate module outputs by diffusers
// module name (for tests that localise a mismatch).
type Taps map[string]*graph.Tensor

type builder struct {
	b     *graph.Builder
	c     Config
	ctx   Context
	layer int
	temb  *graph.Tensor
	taps  Taps
}

// Build adds the UNet to b: sample [batch, in, h, w], timesteps [batch],
// and ctx -> noise prediction [batch, out, h, w].
func Build(b *graph.Builder, c Config, sample, timesteps *graph.Tensor, ctx Context, taps Taps) *graph.Tensor {
	if err := c.Validate(); err != nil {
		b.Errorf("%v", err)
		return sample
	}
	nl := c.CrossAttentionLayers()
	if len(ctx.Keys) != 1 && len(ctx.Keys) != nl || ctx.Values != nil && len(ctx.Values) != 1 && len(ctx.Values) != nl {
		b.Errorf("unet: %d key and %d value contexts for %d cross-attention layers", len(ctx.Keys), len(ctx.Values), nl)
		return sample
	}
	u := &builder{b: b, c: c, ctx: ctx, taps: taps}
	c0 := c.BlockOutChannels[0]
	tproj := b.TimestepEmbedding(timesteps, c0, c.FlipSinToCos, c.FreqShift)
	u.tap("time_proj", tproj)
	func() {
		defer b.Scope("time_embedding")()
		t := u.linear("linear_1", tproj, c0, 4*c0)
		u.temb = u.linear("linear_2", b.SiLU(t), 4*c0, 4*c0)
	}()
	u.tap("time_embedding", u.temb)
	h := u.conv("conv_in", sample, c.InChannels, c0, 3, 1)
	u.tap("conv_in", h)
	skips := []*graph.Tensor{h}
	ch := c0
	for i, typ := range c.DownBlockTypes {
		name := fmt.Sprintf("down_blocks.%d", i)
		out := c.BlockOutChannels[i]
		final := i == len(c.DownBlockTypes)-1
		for j := 0; j < c.LayersPerBlock; j++ {
			h = u.resnet(fmt.Sprintf("%s.resnets.%d", name, j), h, nil, ch, out)
			ch = out
			if typ == "CrossAttnDownBlock2D" {
				h = u.transformer(fmt.Sprintf("%s.attentions.%d", name, j), h, out, c.Heads[i])
			}
			skips = append(skips, h)
		}
		if !final {
			h = u.conv(name+".downsamplers.0.conv", h, out, out, 3, 2)
			skips = append(skips, h)
		}
		u.tap(name, h)
	}
	last := len(c.BlockOutChannels) - 1
	h = u.resnet("mid_block.resnets.0", h, nil, ch, ch)
	h = u.transformer("mid_block.attentions.0", h, ch, c.Heads[last])
	h = u.resnet("mid_block.resnets.1", h, nil, ch, ch)
	u.tap("mid_block", h)
	for i, typ := range c.UpBlockTypes {
		name := fmt.Sprintf("up_blocks.%d", i)
		out := c.BlockOutChannels[last-i]
		heads := c.Heads[last-i]
		for j := 0; j <= c.LayersPerBlock; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			h = u.resnet(fmt.Sprintf("%s.resnets.%d", name, j), h, skip, ch+skip.Dim(1), out)
			ch = out
			if typ == "CrossAttnUpBlock2D" {
				h = u.transformer(fmt.Sprintf("%s.attentions.%d", name, j), h, out, heads)
			}
		}
		if i != last {
			h = u.conv(name+".upsamplers.0.conv", b.Upsample2x(h), out, out, 3, 1)
		}
		u.tap(name, h)
	}
	h = u.groupNorm("conv_norm_out", h, ch, c.NormEps, false)
	u.tap("conv_norm_out", h)
	out := u.conv("conv_out", b.SiLU(h), ch, c.OutChannels, 3, 1)
	u.tap("conv_out", out)
	return out
}

func (u *builder) tap(name string, t *graph.Tensor) {
	if u.taps != nil {
		u.taps[name] = t
	}
}

func (u *builder) linear(name string, x *graph.Tensor, in, out int) *graph.Tensor {
	defer u.b.Scope(name)()
	return u.b.Linear(x, u.b.Weight("weight", out, in), u.b.Weight("bias", out))
}

func (u *builder) conv(name string, x *graph.Tensor, in, out, k, stride int) *graph.Tensor {
	defer u.b.Scope(name)()
	return u.b.Conv2d(x, u.b.Weight("weight", out, in, k, k), u.b.Weight("bias", out), graph.Pad(stride, k/2))
}

func (u *builder) groupNorm(name string, x *graph.Tensor, ch int, eps float32, silu bool) *graph.Tensor {
	defer u.b.Scope(name)()
	return u.b.GroupNorm(x, u.b.Weight("weight", ch), u.b.Weight("bias", ch), u.c.NormGroups, eps, silu)
}

// resnet is ResnetBlock2D; in up blocks, skip (not nil) is concatenated
// to x first. Each resnet and each transformer is a checkpoint segment
// (recomputed in the backward when the graph is built with
// checkpointing); the up blocks' concatenation is inside the segment so
// that its output, as wide as both inputs, is not kept either.
func (u *builder) resnet(name string, x, skip *graph.Tensor, in, out int) *graph.Tensor {
	b := u.b
	defer b.Checkpoint()()
	if skip != nil {
		x = b.Concat(x, skip, 1)
	}
	defer b.Scope(name)()
	h := u.groupNorm("norm1", x, in, u.c.NormEps, true)
	h = u.conv("conv1", h, in, out, 3, 1)
	t := u.linear("time_emb_proj", b.SiLU(u.temb), u.temb.Dim(1), out)
	h = b.Add(h, b.Reshape(t, t.Dim(0), out, 1, 1))
	h = u.groupNorm("norm2", h, out, u.c.NormEps, true)
	h = u.conv("conv2", h, out, out, 3, 1)
	if in != out {
		x = u.conv("conv_shortcut", x, in, out, 1, 1)
	}
	out2 := b.Add(x, h)
	u.tap(name, out2)
	return out2
}

// transformer is Transformer2DModel with one BasicTransformerBlock per
// transformer layer: GN -> proj_in -> [self-attn, cross-attn, GEGLU FF] ->
// proj_out -> + input.
func (u *builder) transformer(name string, x *graph.Tensor, ch, heads int) *graph.Tensor {
	b := u.b
	defer b.Checkpoint()()
	defer b.Scope(name)()
	n, hh, ww := x.Dim(0), x.Dim(2), x.Dim(3)
	h := u.groupNorm("norm", x, ch, 1e-6, false)
	if u.c.UseLinearProjection {
		h = b.Reshape(b.Permute(h, 0, 2, 3, 1), n, hh*ww, ch)
		h = u.linear("proj_in", h, ch, ch)
	} else {
		h = u.conv("proj_in", h, ch, ch, 1, 1)
		h = b.Reshape(b.Permute(h, 0, 2, 3, 1), n, hh*ww, ch)
	}
	for k := 0; k < max(u.c.TransformerLayers, 1); k++ {
		h = u.block(fmt.Sprintf("transformer_blocks.%d", k), name, h, ch, heads)
	}
	if u.c.UseLinearProjection {
		h = u.linear("proj_out", h, ch, ch)
		h = b.Permute(b.Reshape(h, n, hh, ww, ch), 0, 3, 1, 2)
	} else {
		h = b.Permute(b.Reshape(h, n, hh, ww, ch), 0, 3, 1, 2)
		h = u.conv("proj_out", h, ch, ch, 1, 1)
	}
	out := b.Add(h, x)
	u.tap(name, out)
	return out
}

func (u *builder) block(name, parent string, x *graph.Tensor, ch, heads int) *graph.Tensor {
	b := u.b
	defer b.Scope(name)()
	ln := func(n string, x *graph.Tensor) *graph.Tensor {
		defer b.Scope(n)()
		return b.LayerNorm(x, b.Weight("weight", ch), b.Weight("bias", ch), 1e-5)
	}
	attn := func(n string, x, kv, vv *graph.Tensor, kvDim int) *graph.Tensor {
		defer b.Scope(n)()
		q := b.Linear(x, b.Weight("to_q.weight", ch, ch), nil)
		k := b.Linear(kv, b.Weight("to_k.weight", ch, kvDim), nil)
		v := b.Linear(vv, b.Weight("to_v.weight", ch, kvDim), nil)
		a := b.Attention(q, k, v, heads, 0, false)
		return b.Linear(a, b.Weight("to_out.0.weight", ch, ch), b.Weight("to_out.0.bias", ch))
	}
	h := ln("norm1", x)
	a1 := attn("attn1", h, h, h, ch)
	u.tap(parent+"."+name+".attn1", a1)
	x = b.Add(x, a1)
	h = ln("norm2", x)
	kctx, vctx := u.ctx.at(u.layer)
	u.layer++
	if kctx.Dim(0) != x.Dim(0) {
		b.Errorf("context batch %d for sample batch %d", kctx.Dim(0), x.Dim(0))
	}
	a2 := attn("attn2", h, kctx, vctx, u.c.CrossAttentionDim)
	u.tap(parent+"."+name+".attn2", a2)
	x = b.Add(x, a2)
	h = ln("norm3", x)
	func() {
		defer b.Scope("ff.net")()
		f := func() *graph.Tensor {
			defer b.Scope("0.proj")()
			return b.Linear(h, b.Weight("weight", 8*ch, ch), b.Weight("bias", 8*ch))
		}()
		h = b.GEGLU(f)
		func() {
			defer b.Scope("2")()
			h = b.Linear(h, b.Weight("weight", ch, 4*ch), b.Weight("bias", ch))
		}()
	}()
	u.tap(parent+"."+name+".ff", h)
	return b.Add(x, h)
}
