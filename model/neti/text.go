package neti

import (
	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/model/clip"
)

// TextOutputs are NeTI's two encodings of a prompt for one (t, layer):
// keys feed the cross-attention keys, values (with the textual bypass at
// the placeholder) feed the values (neti.md §2.2, §3.3).
type TextOutputs struct {
	Keys, Values *graph.Tensor // [n, seq, D]
	PreLN        *graph.Tensor // [n, seq, D] before the final layer norm (BuildTextAfter: the suffix's rows only)
}

// BuildText adds NeTI's text encoding for n copies of a prompt (one per
// (timestep, layer)): ids [n, seq]; inject [n, seq, D] and mask [n, seq, 1]
// put the mapper's token embedding at placeholder positions (clip.Build);
// bypass [n, seq, D] holds alpha * v/|v| at placeholder rows and zeros
// elsewhere, so that values = LN(H + |H| * bypass) = LN(h + alpha*|h|*v/|v|)
// at the placeholder and LN(H) everywhere else.
func BuildText(b *graph.Builder, c clip.Config, ids, inject, mask, bypass *graph.Tensor) TextOutputs {
	return BuildTextAfter(b, c, ids, inject, mask, bypass, nil)
}

// TextPrefix is a prompt's positions before its first placeholder encoded
// once, batch 1: CLIP is causal and the mappers reach only positions from
// the first placeholder on, so these rows are the same for every
// (timestep, layer), and so are the keys and values later positions attend
// to in each CLIP layer.
type TextPrefix struct {
	Cache  clip.Prefix
	Hidden *graph.Tensor // [1, P, D], after the final layer norm
}

// BuildTextPrefix encodes ids [1, P], the tokens before the first
// placeholder.
func BuildTextPrefix(b *graph.Builder, c clip.Config, ids *graph.Tensor) TextPrefix {
	enc := clip.Build(b, c, ids, nil, nil)
	return TextPrefix{Cache: enc.Cache, Hidden: enc.Hidden}
}

// BuildTextAfter is BuildText computing only the positions after pre (nil:
// none): ids, inject, mask and bypass cover positions P..seq-1 ([n, seq-P,
// ...]). Keys and Values are still the whole [n, seq, D], the prefix's
// hidden rows (the same in both: the bypass is at placeholders only)
// broadcast over n before the suffix's, so the consumer sees no
// difference; PreLN covers the suffix only.
func BuildTextAfter(b *graph.Builder, c clip.Config, ids, inject, mask, bypass *graph.Tensor, pre *TextPrefix) TextOutputs {
	var cache *clip.Prefix
	if pre != nil {
		cache = &pre.Cache
	}
	enc := clip.BuildAfter(b, c, ids, inject, mask, cache)
	h := enc.PreLN
	hPass := b.Add(h, b.Mul(b.RowNorm(h), bypass))
	var values *graph.Tensor
	func() {
		defer b.Scope("text_model")()
		values = clip.FinalNorm(b, c, hPass)
	}()
	keys := enc.Hidden
	if pre != nil {
		rows := clip.BroadcastBatch(b, pre.Hidden, ids.Dim(0))
		keys, values = b.Concat(rows, keys, 1), b.Concat(rows, values, 1)
	}
	return TextOutputs{Keys: keys, Values: values, PreLN: h}
}
