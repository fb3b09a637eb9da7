package config

import (
	"encoding/json"
	"fmt"
)

// CLIPText is a transformers CLIPTextConfig (text_encoder/config.json).
type CLIPText struct {
	Architectures         []string `json:"architectures"`
	ModelType             string   `json:"model_type"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	VocabSize             int      `json:"vocab_size"`
	HiddenAct             string   `json:"hidden_act"` // "quick_gelu" (SD 1.x) or "gelu" (SD 2.x)
	LayerNormEps          float64  `json:"layer_norm_eps"`
	ProjectionDim         int      `json:"projection_dim"`
	// The token ids here are transformers' defaults and often wrong for
	// the actual vocabulary; the tokenizer files are authoritative.
	PadTokenID int    `json:"pad_token_id"`
	BOSTokenID int    `json:"bos_token_id"`
	EOSTokenID int    `json:"eos_token_id"`
	TorchDType string `json:"torch_dtype"`
}

// DefaultCLIPText is CLIPTextConfig() of transformers 4.30.
func DefaultCLIPText() CLIPText {
	return CLIPText{
		ModelType:             "clip_text_model",
		HiddenSize:            512,
		IntermediateSize:      2048,
		NumHiddenLayers:       12,
		NumAttentionHeads:     8,
		MaxPositionEmbeddings: 77,
		VocabSize:             49408,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		ProjectionDim:         512,
		PadTokenID:            1,
		BOSTokenID:            0,
		EOSTokenID:            2,
	}
}

// LoadCLIPText reads and validates a text encoder config file.
func LoadCLIPText(path string) (CLIPText, error) {
	b, err := readFile(path)
	if err != nil {
		return CLIPText{}, fmt.Errorf("config: text encoder: %w", err)
	}
	c, err := ParseCLIPText(b)
	if err != nil {
		return CLIPText{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// ParseCLIPText parses and validates a text encoder config. A full
// CLIPConfig (model_type "clip") is accepted for its text_config.
func ParseCLIPText(b []byte) (CLIPText, error) {
	c := DefaultCLIPText()
	raw, err := decode(b, &c)
	if err != nil {
		return CLIPText{}, fmt.Errorf("config: text encoder: %w", err)
	}
	if tc, ok := raw["text_config"]; ok && c.ModelType == "clip" && !isNull(raw, "text_config") {
		inner := DefaultCLIPText()
		if err := json.Unmarshal(pythonJSON(tc), &inner); err != nil {
			return CLIPText{}, fmt.Errorf("config: text encoder: text_config: %w", err)
		}
		inner.Architectures, inner.TorchDType = c.Architectures, c.TorchDType
		c = inner
		c.ModelType = "clip_text_model"
	}
	if err := c.Validate(); err != nil {
		return CLIPText{}, err
	}
	return c, nil
}

// Validate checks the values are usable by the CLIP text transformer.
func (c CLIPText) Validate() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("config: text encoder: "+format, a...)
	}
	if c.ModelType != "" && c.ModelType != "clip_text_model" {
		return fail("model_type %q is not a CLIP text model", c.ModelType)
	}
	for _, r := range []struct {
		what   string
		v, max int
	}{
		{"hidden_size", c.HiddenSize, maxChannels},
		{"intermediate_size", c.IntermediateSize, 4 * maxChannels},
		{"num_hidden_layers", c.NumHiddenLayers, 256},
		{"num_attention_heads", c.NumAttentionHeads, maxChannels},
		{"max_position_embeddings", c.MaxPositionEmbeddings, 1 << 16},
		{"vocab_size", c.VocabSize, 1 << 24},
	} {
		if err := checkRange(r.what, r.v, 1, r.max); err != nil {
			return fail("%v", err)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fail("hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.HiddenAct != "quick_gelu" && c.HiddenAct != "gelu" {
		return fail("hidden_act %q is not supported (want quick_gelu or gelu)", c.HiddenAct)
	}
	if !(c.LayerNormEps > 0 && c.LayerNormEps < 1) {
		return fail("layer_norm_eps %g is not in (0, 1)", c.LayerNormEps)
	}
	return nil
}

// HeadDim is the width of one attention head.
func (c CLIPText) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }
