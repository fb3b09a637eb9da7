package clip

import "github.com/neti-project/neti/model/config"

// FromConfig takes the encoder's numbers from a text_encoder/config.json.
func FromConfig(c config.CLIPText) Config {
	return Config{
		Hidden: c.HiddenSize, Intermediate: c.IntermediateSize, Layers: c.NumHiddenLayers,
		Heads: c.NumAttentionHeads, MaxPositions: c.MaxPositionEmbeddings, Vocab: c.VocabSize,
		Act: c.HiddenAct, Eps: float32(c.LayerNormEps),
	}
}
