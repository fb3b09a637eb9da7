// Package clip builds the CLIP text encoder (transformers' CLIPTextModel,
// as Stable Diffusion uses it) on the graph op set, with the hooks NeTI and
// textual inversion need: replacement token embeddings at chosen positions
// and the last hidden state both before and after the final layer norm.
//
// Weight names are transformers' (`text_model.encoder.layers.0.mlp.fc1.weight`),
// so a diffusers text_encoder/ folder maps one to one.
package clip

import (
	"fmt"

	"github.com/neti-project/neti/graph"
)

// Config is the part of a CLIPTextConfig the encoder needs.
type Config struct {
	Hidden       int     // hidden_size
	Intermediate int     // intermediate_size
	Layers       int     // num_hidden_layers
	Heads        int     // num_attention_heads
	MaxPositions int     // max_position_embeddings
	Vocab        int     // vocab_size
	Act          string  // hidden_act: "quick_gelu" or "gelu"
	Eps          float32 // layer_norm_eps
}

// Validate checks that the numbers describe a buildable encoder.
func (c Config) Validate() error {
	switch {
	case c.Hidden <= 0 || c.Intermediate <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.MaxPositions <= 0 || c.Vocab <= 0:
		return fmt.Errorf("clip: config has a non-positive size: %+v", c)
	case c.Hidden%c.Heads != 0:
		return fmt.Errorf("clip: hidden size %d is not a multiple of %d heads", c.Hidden, c.Heads)
	case c.Act != "quick_gelu" && c.Act != "gelu":
		return fmt.Errorf("clip: unsupported hidden_act %q (quick_gelu or gelu)", c.Act)
	}
	return nil
}

// Outputs of one encoder pass.
type Outputs struct {
	PreLN  *graph.Tensor // [batch, seq, hidden]: encoder output before final_layer_norm (NeTI adds its bypass here)
	Hidden *graph.Tensor // [batch, seq, hidden]: last_hidden_state, the SD conditioning
	Layers []*graph.Tensor
}

// Build adds the encoder to b. ids is [batch, seq] (token ids as floats).
// When inject is not nil ([batch, seq, hidden]) with mask ([batch, seq, 1],
// 1 where a learned vector replaces the token), the token embedding at
// masked positions is replaced before the position embedding is added, as
// NeTI and textual inversion do; the ids there must still be valid rows
// (callers put any valid id in place of a placeholder outside the table).
func Build(b *graph.Builder, c Config, ids, inject, mask *graph.Tensor) Outputs {
	if err := c.Validate(); err != nil {
		b.Errorf("%v", err)
	}
	seq := ids.Dim(1)
	if seq > c.MaxPositions {
		b.Errorf("clip: %d tokens exceed %d positions", seq, c.MaxPositions)
	}
	defer b.Scope("text_model")()
	tokTable := b.Weight("embeddings.token_embedding.weight", c.Vocab, c.Hidden)
	posTable := b.Weight("embeddings.position_embedding.weight", c.MaxPositions, c.Hidden)
	h := b.Embedding(tokTable, ids)
	if inject != nil {
		// h + mask*(inject-h): exact replacement where mask is 1.
		h = b.Add(h, b.Mul(mask, b.Sub(inject, h)))
	}
	pos := make([]float32, seq)
	for i := range pos {
		pos[i] = float32(i)
	}
	h = b.Add(h, b.Embedding(posTable, b.Const(pos, seq)))
	out := Outputs{Layers: []*graph.Tensor{h}}
	for i := 0; i < c.Layers; i++ {
		h = layer(b, c, i, h)
		out.Layers = append(out.Layers, h)
	}
	out.PreLN = h
	out.Hidden = FinalNorm(b, c, h)
	return out
}

// FinalNorm applies final_layer_norm; NeTI calls it again on the bypassed
// hidden state with the same weights.
func FinalNorm(b *graph.Builder, c Config, h *graph.Tensor) *graph.Tensor {
	return norm(b, "final_layer_norm", h, c)
}

func norm(b *graph.Builder, name string, x *graph.Tensor, c Config) *graph.Tensor {
	defer b.Scope(name)()
	return b.LayerNorm(x, b.Weight("weight", c.Hidden), b.Weight("bias", c.Hidden), c.Eps)
}

func linear(b *graph.Builder, name string, x *graph.Tensor, in, out int) *graph.Tensor {
	defer b.Scope(name)()
	return b.Linear(x, b.Weight("weight", out, in), b.Weight("bias", out))
}

// layer is one CLIPEncoderLayer, a checkpoint segment (recomputed in the
// backward when the graph is built with checkpointing).
func layer(b *graph.Builder, c Config, i int, h *graph.Tensor) *graph.Tensor {
	defer b.Checkpoint()()
	defer b.Scope(fmt.Sprintf("encoder.layers.%d", i))()
	x := norm(b, "layer_norm1", h, c)
	func() {
		defer b.Scope("self_attn")()
		q := linear(b, "q_proj", x, c.Hidden, c.Hidden)
		k := linear(b, "k_proj", x, c.Hidden, c.Hidden)
		v := linear(b, "v_proj", x, c.Hidden, c.Hidden)
		a := b.Attention(q, k, v, c.Heads, 0, true)
		x = linear(b, "out_proj", a, c.Hidden, c.Hidden)
	}()
	h = b.Add(h, x)
	x = norm(b, "layer_norm2", h, c)
	func() {
		defer b.Scope("mlp")()
		x = linear(b, "fc1", x, c.Hidden, c.Intermediate)
		if c.Act == "gelu" {
			x = b.GELU(x)
		} else {
			x = b.QuickGELU(x)
		}
		x = linear(b, "fc2", x, c.Intermediate, c.Hidden)
	}()
	return b.Add(h, x)
}
