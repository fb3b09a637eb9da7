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
	// Cache holds each layer's self-attention keys and values of this
	// pass's positions, all a later pass needs to continue the sequence
	// (BuildAfter).
	Cache Prefix
}

// Prefix is what the encoder needs of a prompt's first positions to encode
// the rest on its own: CLIP's attention is causal, so a position depends on
// earlier ones only through their keys and values in each layer. Keys and
// Values hold one tensor per layer, [1 or batch, P, hidden]; a batch of 1
// is shared by every row of the later pass.
type Prefix struct {
	Keys, Values []*graph.Tensor
}

// Len is the number of positions the prefix covers (0 for none).
func (p *Prefix) Len() int {
	if p == nil || len(p.Keys) == 0 {
		return 0
	}
	return p.Keys[0].Dim(1)
}

// Build adds the encoder to b. ids is [batch, seq] (token ids as floats).
// When inject is not nil ([batch, seq, hidden]) with mask ([batch, seq, 1],
// 1 where a learned vector replaces the token), the token embedding at
// masked positions is replaced before the position embedding is added, as
// NeTI and textual inversion do; the ids there must still be valid rows
// (callers put any valid id in place of a placeholder outside the table).
func Build(b *graph.Builder, c Config, ids, inject, mask *graph.Tensor) Outputs {
	return BuildAfter(b, c, ids, inject, mask, nil)
}

// BuildAfter is Build for the positions that follow a prefix encoded
// before (nil: none): ids [batch, seq] are the tokens at positions
// prefix.Len() .. prefix.Len()+seq-1, whose attention sees the prefix's
// keys and values and their own causally. The outputs cover these
// positions only and equal the same rows of Build on the whole sequence.
func BuildAfter(b *graph.Builder, c Config, ids, inject, mask *graph.Tensor, prefix *Prefix) Outputs {
	if err := c.Validate(); err != nil {
		b.Errorf("%v", err)
	}
	start, seq := prefix.Len(), ids.Dim(1)
	if start+seq > c.MaxPositions {
		b.Errorf("clip: %d tokens exceed %d positions", start+seq, c.MaxPositions)
	}
	if prefix != nil && (len(prefix.Keys) != c.Layers || len(prefix.Values) != c.Layers) {
		b.Errorf("clip: a prefix of %d key and %d value tensors for %d layers", len(prefix.Keys), len(prefix.Values), c.Layers)
		prefix, start = nil, 0
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
		pos[i] = float32(start + i)
	}
	h = b.Add(h, b.Embedding(posTable, b.Const(pos, seq)))
	out := Outputs{Layers: []*graph.Tensor{h}}
	for i := 0; i < c.Layers; i++ {
		var kv *layerKV
		if prefix != nil {
			kv = &layerKV{k: prefix.Keys[i], v: prefix.Values[i]}
		}
		var k, v *graph.Tensor
		h, k, v = layer(b, c, i, h, kv)
		out.Layers = append(out.Layers, h)
		out.Cache.Keys = append(out.Cache.Keys, k)
		out.Cache.Values = append(out.Cache.Values, v)
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

// layerKV is one layer's share of a Prefix.
type layerKV struct{ k, v *graph.Tensor }

// BroadcastBatch repeats a batch-1 tensor [1, ...] n times ([n, ...]) by
// adding zeros (exact: x + 0 = x); other tensors pass unchanged. It lets a
// prefix encoded once serve every row of a later pass.
func BroadcastBatch(b *graph.Builder, t *graph.Tensor, n int) *graph.Tensor {
	if n <= 1 || t.Dim(0) != 1 {
		return t
	}
	shape := make([]int, t.Rank())
	shape[0] = n
	for i := 1; i < len(shape); i++ {
		shape[i] = 1
	}
	return b.Add(t, b.Const(make([]float32, n), shape...))
}

// withPrefix puts the prefix rows p before t's along the sequence.
func withPrefix(b *graph.Builder, p, t *graph.Tensor) *graph.Tensor {
	return b.Concat(BroadcastBatch(b, p, t.Dim(0)), t, 1)
}

// layer adds encoder layer i after h and returns its output and its
// self-attention keys and values of h's positions (without kv's). It is a
// checkpoint segment (recomputed in the backward when the graph is built
// with checkpointing).
func layer(b *graph.Builder, c Config, i int, h *graph.Tensor, kv *layerKV) (out, k, v *graph.Tensor) {
	defer b.Checkpoint()()
	defer b.Scope(fmt.Sprintf("encoder.layers.%d", i))()
	x := norm(b, "layer_norm1", h, c)
	func() {
		defer b.Scope("self_attn")()
		q := linear(b, "q_proj", x, c.Hidden, c.Hidden)
		k = linear(b, "k_proj", x, c.Hidden, c.Hidden)
		v = linear(b, "v_proj", x, c.Hidden, c.Hidden)
		var a *graph.Tensor
		if kv == nil {
			a = b.Attention(q, k, v, c.Heads, 0, true)
		} else {
			a = b.CausalAttention(q, withPrefix(b, kv.k, k), withPrefix(b, kv.v, v), c.Heads, 0, kv.k.Dim(1))
		}
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
	return b.Add(h, x), k, v
}
