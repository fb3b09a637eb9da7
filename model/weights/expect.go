package weights

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/neti-project/neti/model/config"
	"github.com/neti-project/neti/model/safetensors"
)

// maxReportLines caps the problems listed in one Check error.
const maxReportLines = 20

// Expect lists the tensors a model needs, by diffusers name.
type Expect struct {
	Component string           // "unet", "vae", "text_encoder": prefixes messages
	Shapes    map[string][]int // required floating-point tensors
	Optional  map[string][]int // may be absent (buffers); checked when present
}

// Check verifies that s holds every tensor of want with that exact shape and
// a floating-point dtype. Tensors s has beyond want are not an error.
func Check(s Store, want map[string][]int) error { return Expect{Shapes: want}.Check(s) }

// Check reports every missing, mis-shaped or non-float tensor of e in one
// error, sorted by name and capped at 20 lines plus a count of the rest.
func (e Expect) Check(s Store) error {
	var problems []string
	for name, shape := range e.Shapes {
		in, ok := s.Info(name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: missing (want shape %v)", name, shape))
		case !slices.Equal(in.Shape, shape):
			problems = append(problems, fmt.Sprintf("%s: shape %v, want %v", name, in.Shape, shape))
		case !isFloat(in.DType):
			problems = append(problems, fmt.Sprintf("%s: dtype %s, want a floating-point type", name, in.DType))
		}
	}
	for name, shape := range e.Optional {
		if in, ok := s.Info(name); ok && in.Numel() != numel(shape) {
			problems = append(problems, fmt.Sprintf("%s: shape %v, want %v", name, in.Shape, shape))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	var b strings.Builder
	what := "weights"
	if e.Component != "" {
		what += ": " + e.Component
	}
	fmt.Fprintf(&b, "%s: %d of %d expected tensors are missing or wrong:", what, len(problems), len(e.Shapes)+len(e.Optional))
	for i, p := range problems {
		if i == maxReportLines {
			fmt.Fprintf(&b, "\n  ... and %d more", len(problems)-maxReportLines)
			break
		}
		b.WriteString("\n  " + p)
	}
	return fmt.Errorf("%s", b.String())
}

func isFloat(d safetensors.DType) bool {
	return d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16 || d == safetensors.F64
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// shapes collects the expected tensors while the builders below walk a
// model's structure.
type shapes map[string][]int

func (s shapes) add(name string, shape ...int) { s[name] = shape }

// linear adds a Linear layer: weight [out, in] and, if bias, bias [out].
func (s shapes) linear(prefix string, in, out int, bias bool) {
	s.add(prefix+".weight", out, in)
	if bias {
		s.add(prefix+".bias", out)
	}
}

func (s shapes) conv(prefix string, in, out, k int) {
	s.add(prefix+".weight", out, in, k, k)
	s.add(prefix+".bias", out)
}

func (s shapes) norm(prefix string, ch int) {
	s.add(prefix+".weight", ch)
	s.add(prefix+".bias", ch)
}

// resnet adds a ResnetBlock2D; temb 0 means no time embedding projection.
func (s shapes) resnet(prefix string, in, out, temb int) {
	s.norm(prefix+".norm1", in)
	s.conv(prefix+".conv1", in, out, 3)
	if temb > 0 {
		s.linear(prefix+".time_emb_proj", temb, out, true)
	}
	s.norm(prefix+".norm2", out)
	s.conv(prefix+".conv2", out, out, 3)
	if in != out {
		s.conv(prefix+".conv_shortcut", in, out, 1)
	}
}

// transformer adds a Transformer2DModel with one BasicTransformerBlock.
func (s shapes) transformer(prefix string, ch, ctx int, linearProj bool) {
	s.norm(prefix+".norm", ch)
	for _, p := range []string{".proj_in", ".proj_out"} {
		if linearProj {
			s.linear(prefix+p, ch, ch, true)
		} else {
			s.conv(prefix+p, ch, ch, 1)
		}
	}
	b := prefix + ".transformer_blocks.0"
	for i, kv := range []int{ch, ctx} {
		a := fmt.Sprintf("%s.attn%d", b, i+1)
		s.linear(a+".to_q", ch, ch, false)
		s.linear(a+".to_k", kv, ch, false)
		s.linear(a+".to_v", kv, ch, false)
		s.linear(a+".to_out.0", ch, ch, true)
	}
	for i := 1; i <= 3; i++ {
		s.norm(fmt.Sprintf("%s.norm%d", b, i), ch)
	}
	s.linear(b+".ff.net.0.proj", ch, 8*ch, true) // GEGLU: value and gate halves
	s.linear(b+".ff.net.2", 4*ch, ch, true)
}

// ExpectUNet lists the tensors of a diffusers UNet2DConditionModel with
// config c (diffusers 0.19 names).
func ExpectUNet(c config.UNet) (Expect, error) {
	if err := c.Validate(); err != nil {
		return Expect{}, err
	}
	s := shapes{}
	ch := c.BlockOutChannels
	n := len(ch)
	temb := c.TimeEmbedDim()
	s.conv("conv_in", c.InChannels, ch[0], c.ConvInKernel)
	s.linear("time_embedding.linear_1", ch[0], temb, true)
	s.linear("time_embedding.linear_2", temb, temb, true)
	prev := ch[0]
	for i, t := range c.DownBlockTypes {
		for l := range c.LayersPerBlock {
			in := ch[i]
			if l == 0 {
				in = prev
			}
			s.resnet(fmt.Sprintf("down_blocks.%d.resnets.%d", i, l), in, ch[i], temb)
			if t == config.CrossAttnDownBlock2D {
				s.transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", i, l), ch[i], c.CrossAttentionDim, c.UseLinearProjection)
			}
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), ch[i], ch[i], 3)
		}
		prev = ch[i]
	}
	mid := ch[n-1]
	s.resnet("mid_block.resnets.0", mid, mid, temb)
	s.transformer("mid_block.attentions.0", mid, c.CrossAttentionDim, c.UseLinearProjection)
	s.resnet("mid_block.resnets.1", mid, mid, temb)
	// Up block i mirrors down block n-1-i; each resnet also takes the skip
	// connection of the matching down-path output.
	rev := slices.Clone(ch)
	slices.Reverse(rev)
	prevOut := rev[0]
	for i, t := range c.UpBlockTypes {
		out := rev[i]
		in := rev[min(i+1, n-1)]
		for l := range c.LayersPerBlock + 1 {
			skip := out
			if l == c.LayersPerBlock {
				skip = in
			}
			resIn := out
			if l == 0 {
				resIn = prevOut
			}
			s.resnet(fmt.Sprintf("up_blocks.%d.resnets.%d", i, l), resIn+skip, out, temb)
			if t == config.CrossAttnUpBlock2D {
				s.transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", i, l), out, c.CrossAttentionDim, c.UseLinearProjection)
			}
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), out, out, 3)
		}
		prevOut = out
	}
	s.norm("conv_norm_out", ch[0])
	s.conv("conv_out", ch[0], c.OutChannels, c.ConvOutKernel)
	return Expect{Component: "unet", Shapes: s}, nil
}

// ExpectVAE lists the tensors of a diffusers AutoencoderKL with config c
// (current attention names to_q/to_k/to_v/to_out.0).
func ExpectVAE(c config.VAE) (Expect, error) {
	if err := c.Validate(); err != nil {
		return Expect{}, err
	}
	s := shapes{}
	ch := c.BlockOutChannels
	n := len(ch)
	lat := c.LatentChannels
	midBlock := func(prefix string) {
		m := ch[n-1]
		s.resnet(prefix+".mid_block.resnets.0", m, m, 0)
		a := prefix + ".mid_block.attentions.0"
		s.norm(a+".group_norm", m)
		for _, p := range []string{".to_q", ".to_k", ".to_v", ".to_out.0"} {
			s.linear(a+p, m, m, true)
		}
		s.resnet(prefix+".mid_block.resnets.1", m, m, 0)
	}
	s.conv("encoder.conv_in", c.InChannels, ch[0], 3)
	prev := ch[0]
	for i := range n {
		for l := range c.LayersPerBlock {
			in := ch[i]
			if l == 0 {
				in = prev
			}
			s.resnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, l), in, ch[i], 0)
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), ch[i], ch[i], 3)
		}
		prev = ch[i]
	}
	midBlock("encoder")
	s.norm("encoder.conv_norm_out", ch[n-1])
	s.conv("encoder.conv_out", ch[n-1], 2*lat, 3)
	s.conv("quant_conv", 2*lat, 2*lat, 1)
	s.conv("post_quant_conv", lat, lat, 1)
	s.conv("decoder.conv_in", lat, ch[n-1], 3)
	midBlock("decoder")
	rev := slices.Clone(ch)
	slices.Reverse(rev)
	prev = rev[0]
	for i := range n {
		for l := range c.LayersPerBlock + 1 {
			in := rev[i]
			if l == 0 {
				in = prev
			}
			s.resnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, l), in, rev[i], 0)
		}
		if i < n-1 {
			s.conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), rev[i], rev[i], 3)
		}
		prev = rev[i]
	}
	s.norm("decoder.conv_norm_out", ch[0])
	s.conv("decoder.conv_out", ch[0], c.OutChannels, 3)
	return Expect{Component: "vae", Shapes: s}, nil
}

// ExpectCLIPText lists the tensors of a transformers CLIPTextModel. The
// position_ids buffer is optional: some exports leave it out.
func ExpectCLIPText(c config.CLIPText) (Expect, error) {
	if err := c.Validate(); err != nil {
		return Expect{}, err
	}
	s := shapes{}
	h := c.HiddenSize
	s.add("text_model.embeddings.token_embedding.weight", c.VocabSize, h)
	s.add("text_model.embeddings.position_embedding.weight", c.MaxPositionEmbeddings, h)
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("text_model.encoder.layers.%d", i)
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			s.linear(p+".self_attn."+proj, h, h, true)
		}
		s.norm(p+".layer_norm1", h)
		s.norm(p+".layer_norm2", h)
		s.linear(p+".mlp.fc1", h, c.IntermediateSize, true)
		s.linear(p+".mlp.fc2", c.IntermediateSize, h, true)
	}
	s.norm("text_model.final_layer_norm", h)
	return Expect{
		Component: "text_encoder",
		Shapes:    s,
		Optional:  map[string][]int{"text_model.embeddings.position_ids": {1, c.MaxPositionEmbeddings}},
	}, nil
}
