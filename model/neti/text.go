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
	PreLN        *graph.Tensor // [n, seq, D], before the final layer norm
}

// BuildText adds NeTI's text encoding for n copies of a prompt (one per
// (timestep, layer)): ids [n, seq]; inject [n, seq, D] and mask [n, seq, 1]
// put the mapper's token embedding at placeholder positions (clip.Build);
// bypass [n, seq, D] holds alpha * v/|v| at placeholder rows and zeros
// elsewhere, so that values = LN(H + |H| * bypass) = LN(h + alpha*|h|*v/|v|)
// at the placeholder and LN(H) everywhere else.
func BuildText(b *graph.Builder, c clip.Config, ids, inject, mask, bypass *graph.Tensor) TextOutputs {
	enc := clip.Build(b, c, ids, inject, mask)
	h := enc.PreLN
	hPass := b.Add(h, b.Mul(b.RowNorm(h), bypass))
	var values *graph.Tensor
	func() {
		defer b.Scope("text_model")()
		values = clip.FinalNorm(b, c, hPass)
	}()
	return TextOutputs{Keys: enc.Hidden, Values: values, PreLN: h}
}
