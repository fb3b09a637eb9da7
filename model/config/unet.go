package config

import (
	"fmt"
	"math"
)

// Block types of the SD 1.x / 2.x UNet.
const (
	CrossAttnDownBlock2D    = "CrossAttnDownBlock2D"
	DownBlock2D             = "DownBlock2D"
	CrossAttnUpBlock2D      = "CrossAttnUpBlock2D"
	UpBlock2D               = "UpBlock2D"
	UNetMidBlock2DCrossAttn = "UNetMidBlock2DCrossAttn"
)

// UNet is a diffusers UNet2DConditionModel config (unet/config.json), with
// the per-block values normalised to one entry per down block.
type UNet struct {
	ClassName         string
	SampleSize        int // latent side; 0 when the file does not say
	InChannels        int
	OutChannels       int
	CenterInputSample bool
	FlipSinToCos      bool
	FreqShift         int
	DownBlockTypes    []string
	MidBlockType      string
	UpBlockTypes      []string
	BlockOutChannels  []int
	LayersPerBlock    int
	// AttentionHeadDim is the file's attention_head_dim spread over the
	// down blocks. SD configs misuse the name: it is the number of heads.
	AttentionHeadDim []int
	// NumAttentionHeads is the number of heads each down block really
	// uses: num_attention_heads when the file has it, else
	// AttentionHeadDim (diffusers' rule). Up blocks use it reversed; the
	// mid block uses the last entry.
	NumAttentionHeads         []int
	CrossAttentionDim         int
	TransformerLayersPerBlock []int
	NormNumGroups             int
	NormEps                   float64
	UseLinearProjection       bool
	UpcastAttention           bool
	OnlyCrossAttention        bool
	DualCrossAttention        bool
	ClassEmbedType            string // "" when none
	DownsamplePadding         int
	MidBlockScaleFactor       float64
	ActFn                     string
	TimeEmbeddingType         string
	ResnetTimeScaleShift      string
	ConvInKernel              int
	ConvOutKernel             int
}

// unetFile mirrors the JSON, defaults pre-filled.
type unetFile struct {
	ClassName                         string     `json:"_class_name"`
	SampleSize                        sizeValue  `json:"sample_size"`
	InChannels                        int        `json:"in_channels"`
	OutChannels                       int        `json:"out_channels"`
	CenterInputSample                 bool       `json:"center_input_sample"`
	FlipSinToCos                      bool       `json:"flip_sin_to_cos"`
	FreqShift                         int        `json:"freq_shift"`
	DownBlockTypes                    []string   `json:"down_block_types"`
	MidBlockType                      string     `json:"mid_block_type"`
	UpBlockTypes                      []string   `json:"up_block_types"`
	OnlyCrossAttention                boolOrList `json:"only_cross_attention"`
	BlockOutChannels                  []int      `json:"block_out_channels"`
	LayersPerBlock                    intOrList  `json:"layers_per_block"`
	DownsamplePadding                 int        `json:"downsample_padding"`
	MidBlockScaleFactor               float64    `json:"mid_block_scale_factor"`
	ActFn                             string     `json:"act_fn"`
	NormNumGroups                     int        `json:"norm_num_groups"`
	NormEps                           float64    `json:"norm_eps"`
	CrossAttentionDim                 intOrList  `json:"cross_attention_dim"`
	TransformerLayersPerBlock         intOrList  `json:"transformer_layers_per_block"`
	AttentionHeadDim                  intOrList  `json:"attention_head_dim"`
	NumAttentionHeads                 intOrList  `json:"num_attention_heads"`
	DualCrossAttention                bool       `json:"dual_cross_attention"`
	UseLinearProjection               bool       `json:"use_linear_projection"`
	UpcastAttention                   bool       `json:"upcast_attention"`
	ResnetTimeScaleShift              string     `json:"resnet_time_scale_shift"`
	ResnetSkipTimeAct                 bool       `json:"resnet_skip_time_act"`
	ResnetOutScaleFactor              float64    `json:"resnet_out_scale_factor"`
	TimeEmbeddingType                 string     `json:"time_embedding_type"`
	ConvInKernel                      int        `json:"conv_in_kernel"`
	ConvOutKernel                     int        `json:"conv_out_kernel"`
	ClassEmbeddingsConcat             bool       `json:"class_embeddings_concat"`
	ClassEmbedType                    *string    `json:"class_embed_type"`
	NumClassEmbeds                    *int       `json:"num_class_embeds"`
	AdditionEmbedType                 *string    `json:"addition_embed_type"`
	EncoderHidDim                     *int       `json:"encoder_hid_dim"`
	EncoderHidDimType                 *string    `json:"encoder_hid_dim_type"`
	TimeEmbeddingDim                  *int       `json:"time_embedding_dim"`
	TimeEmbeddingActFn                *string    `json:"time_embedding_act_fn"`
	TimestepPostAct                   *string    `json:"timestep_post_act"`
	TimeCondProjDim                   *int       `json:"time_cond_proj_dim"`
	ProjectionClassEmbeddingsInputDim *int       `json:"projection_class_embeddings_input_dim"`
	MidBlockOnlyCrossAttention        *bool      `json:"mid_block_only_cross_attention"`
	CrossAttentionNorm                *string    `json:"cross_attention_norm"`
	AttentionType                     *string    `json:"attention_type"`
}

// LoadUNet reads and validates a UNet config file.
func LoadUNet(path string) (UNet, error) {
	b, err := readFile(path)
	if err != nil {
		return UNet{}, fmt.Errorf("config: unet: %w", err)
	}
	c, err := ParseUNet(b)
	if err != nil {
		return UNet{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// ParseUNet parses a UNet config with diffusers 0.19 defaults, normalises
// the per-block values and validates the result.
func ParseUNet(b []byte) (UNet, error) {
	f := unetFile{
		InChannels:                4,
		OutChannels:               4,
		FlipSinToCos:              true,
		DownBlockTypes:            []string{CrossAttnDownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D, DownBlock2D},
		MidBlockType:              UNetMidBlock2DCrossAttn,
		UpBlockTypes:              []string{UpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D},
		BlockOutChannels:          []int{320, 640, 1280, 1280},
		LayersPerBlock:            intOrList{2},
		DownsamplePadding:         1,
		MidBlockScaleFactor:       1,
		ActFn:                     "silu",
		NormNumGroups:             32,
		NormEps:                   1e-5,
		CrossAttentionDim:         intOrList{1280},
		TransformerLayersPerBlock: intOrList{1},
		AttentionHeadDim:          intOrList{8},
		ResnetTimeScaleShift:      "default",
		ResnetOutScaleFactor:      1,
		TimeEmbeddingType:         "positional",
		ConvInKernel:              3,
		ConvOutKernel:             3,
	}
	raw, err := decode(b, &f)
	if err != nil {
		return UNet{}, fmt.Errorf("config: unet: %w", err)
	}
	fail := func(format string, a ...any) (UNet, error) {
		return UNet{}, fmt.Errorf("config: unet: "+format, a...)
	}
	// Features whose presence alone means a model this engine cannot run.
	unsupported := []struct {
		key string
		set bool
	}{
		{"class_embed_type (class embeddings)", f.ClassEmbedType != nil},
		{"num_class_embeds (class embeddings)", f.NumClassEmbeds != nil},
		{"projection_class_embeddings_input_dim (class embeddings)", f.ProjectionClassEmbeddingsInputDim != nil},
		{"addition_embed_type (SDXL-style added conditioning)", f.AdditionEmbedType != nil},
		{"encoder_hid_dim (projected text embeddings)", f.EncoderHidDim != nil || f.EncoderHidDimType != nil},
		{"time_embedding_dim", f.TimeEmbeddingDim != nil},
		{"time_embedding_act_fn", f.TimeEmbeddingActFn != nil},
		{"timestep_post_act", f.TimestepPostAct != nil},
		{"time_cond_proj_dim", f.TimeCondProjDim != nil},
		{"cross_attention_norm", f.CrossAttentionNorm != nil},
		{"dual_cross_attention", f.DualCrossAttention},
		{"only_cross_attention", f.OnlyCrossAttention.any()},
		{"mid_block_only_cross_attention", f.MidBlockOnlyCrossAttention != nil && *f.MidBlockOnlyCrossAttention},
		{"resnet_skip_time_act", f.ResnetSkipTimeAct},
		{"class_embeddings_concat", f.ClassEmbeddingsConcat},
	}
	for _, u := range unsupported {
		if u.set {
			return fail("%s is set: not supported (SD 1.x / 2.x UNets do not use it)", u.key)
		}
	}
	if f.AttentionType != nil && *f.AttentionType != "default" {
		return fail("attention_type %q is not supported", *f.AttentionType)
	}
	if isNull(raw, "mid_block_type") {
		return fail("mid_block_type is null (no mid block): not supported")
	}
	if isNull(raw, "norm_num_groups") {
		return fail("norm_num_groups is null (no group norm): not supported")
	}
	n := len(f.DownBlockTypes)
	if n < 1 || n > maxBlocks {
		return fail("%d down blocks, want 1..%d", n, maxBlocks)
	}
	if len(f.UpBlockTypes) != n || len(f.BlockOutChannels) != n {
		return fail("down_block_types (%d), up_block_types (%d) and block_out_channels (%d) must have the same length",
			n, len(f.UpBlockTypes), len(f.BlockOutChannels))
	}
	lpb, err := single("layers_per_block", f.LayersPerBlock, n)
	if err != nil {
		return fail("%v", err)
	}
	cad, err := single("cross_attention_dim", f.CrossAttentionDim, n)
	if err != nil {
		return fail("%v", err)
	}
	c := UNet{
		ClassName:            f.ClassName,
		SampleSize:           int(f.SampleSize),
		InChannels:           f.InChannels,
		OutChannels:          f.OutChannels,
		CenterInputSample:    f.CenterInputSample,
		FlipSinToCos:         f.FlipSinToCos,
		FreqShift:            f.FreqShift,
		DownBlockTypes:       append([]string(nil), f.DownBlockTypes...),
		MidBlockType:         f.MidBlockType,
		UpBlockTypes:         append([]string(nil), f.UpBlockTypes...),
		BlockOutChannels:     append([]int(nil), f.BlockOutChannels...),
		LayersPerBlock:       lpb,
		CrossAttentionDim:    cad,
		NormNumGroups:        f.NormNumGroups,
		NormEps:              f.NormEps,
		UseLinearProjection:  f.UseLinearProjection,
		UpcastAttention:      f.UpcastAttention,
		DownsamplePadding:    f.DownsamplePadding,
		MidBlockScaleFactor:  f.MidBlockScaleFactor,
		ActFn:                f.ActFn,
		TimeEmbeddingType:    f.TimeEmbeddingType,
		ResnetTimeScaleShift: f.ResnetTimeScaleShift,
		ConvInKernel:         f.ConvInKernel,
		ConvOutKernel:        f.ConvOutKernel,
	}
	if f.ResnetOutScaleFactor != 1 {
		return fail("resnet_out_scale_factor %g is not supported (want 1)", f.ResnetOutScaleFactor)
	}
	if c.AttentionHeadDim, err = f.AttentionHeadDim.perBlock("attention_head_dim", n); err != nil {
		return fail("%v", err)
	}
	heads := f.NumAttentionHeads
	if len(heads) == 0 {
		heads = f.AttentionHeadDim // diffusers' historical naming: it is the head count
	}
	if c.NumAttentionHeads, err = heads.perBlock("num_attention_heads", n); err != nil {
		return fail("%v", err)
	}
	if c.NumAttentionHeads == nil {
		return fail("neither attention_head_dim nor num_attention_heads gives the number of heads")
	}
	if c.TransformerLayersPerBlock, err = f.TransformerLayersPerBlock.perBlock("transformer_layers_per_block", n); err != nil {
		return fail("%v", err)
	}
	if err := c.Validate(); err != nil {
		return UNet{}, err
	}
	return c, nil
}

// single reduces a value that diffusers allows per block to the one value
// SD uses for all blocks.
func single(key string, l intOrList, n int) (int, error) {
	v, err := l.perBlock(key, n)
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, fmt.Errorf("%s is empty", key)
	}
	for _, x := range v {
		if x != v[0] {
			return 0, fmt.Errorf("%s %v: only one value for all blocks is supported", key, v)
		}
	}
	return v[0], nil
}

// Validate checks the config describes an SD 1.x / 2.x UNet this engine
// can build.
func (c UNet) Validate() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("config: unet: "+format, a...)
	}
	if c.ClassName != "" && c.ClassName != "UNet2DConditionModel" {
		return fail("_class_name %q is not UNet2DConditionModel", c.ClassName)
	}
	n := len(c.DownBlockTypes)
	if n < 1 || n > maxBlocks || len(c.UpBlockTypes) != n || len(c.BlockOutChannels) != n ||
		len(c.NumAttentionHeads) != n || len(c.TransformerLayersPerBlock) != n {
		return fail("per-block lists must all have one entry per down block (1..%d blocks)", maxBlocks)
	}
	for i, t := range c.DownBlockTypes {
		if t != CrossAttnDownBlock2D && t != DownBlock2D {
			return fail("down_block_types[%d] %q is not supported (want %s or %s)", i, t, CrossAttnDownBlock2D, DownBlock2D)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != CrossAttnUpBlock2D && t != UpBlock2D {
			return fail("up_block_types[%d] %q is not supported (want %s or %s)", i, t, CrossAttnUpBlock2D, UpBlock2D)
		}
	}
	if c.MidBlockType != UNetMidBlock2DCrossAttn {
		return fail("mid_block_type %q is not supported (want %s)", c.MidBlockType, UNetMidBlock2DCrossAttn)
	}
	if c.DualCrossAttention || c.OnlyCrossAttention || c.ClassEmbedType != "" {
		return fail("dual cross attention, only-cross attention and class embeddings are not supported")
	}
	for _, r := range []struct {
		what        string
		v, min, max int
	}{
		{"in_channels", c.InChannels, 1, maxChannels},
		{"out_channels", c.OutChannels, 1, maxChannels},
		{"layers_per_block", c.LayersPerBlock, 1, maxLayers},
		{"cross_attention_dim", c.CrossAttentionDim, 1, maxChannels},
		{"norm_num_groups", c.NormNumGroups, 1, maxChannels},
		{"sample_size", c.SampleSize, 0, maxChannels},
		{"freq_shift", c.FreqShift, -maxChannels, maxChannels},
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
		h := c.NumAttentionHeads[i]
		if h < 1 || ch%h != 0 {
			return fail("block %d: %d channels cannot be split into %d attention heads", i, ch, h)
		}
		if c.TransformerLayersPerBlock[i] != 1 {
			return fail("transformer_layers_per_block[%d] is %d: only 1 is supported", i, c.TransformerLayersPerBlock[i])
		}
	}
	if c.ActFn != "silu" {
		return fail("act_fn %q is not supported (want silu)", c.ActFn)
	}
	if c.TimeEmbeddingType != "positional" {
		return fail("time_embedding_type %q is not supported (want positional)", c.TimeEmbeddingType)
	}
	if c.ResnetTimeScaleShift != "default" {
		return fail("resnet_time_scale_shift %q is not supported (want default)", c.ResnetTimeScaleShift)
	}
	if c.ConvInKernel != 3 || c.ConvOutKernel != 3 {
		return fail("conv_in_kernel %d / conv_out_kernel %d are not supported (want 3)", c.ConvInKernel, c.ConvOutKernel)
	}
	if c.DownsamplePadding != 1 {
		return fail("downsample_padding %d is not supported (want 1)", c.DownsamplePadding)
	}
	if !(c.NormEps > 0 && c.NormEps < 1) {
		return fail("norm_eps %g is not in (0, 1)", c.NormEps)
	}
	if math.IsNaN(c.MidBlockScaleFactor) || math.IsInf(c.MidBlockScaleFactor, 0) || c.MidBlockScaleFactor <= 0 {
		return fail("mid_block_scale_factor %g is not a positive number", c.MidBlockScaleFactor)
	}
	return nil
}

// HeadDim is the width of one attention head in down block i.
func (c UNet) HeadDim(i int) int { return c.BlockOutChannels[i] / c.NumAttentionHeads[i] }

// TimeEmbedDim is the width of the time embedding (4 × the first block's
// channels, as diffusers derives it).
func (c UNet) TimeEmbedDim() int { return 4 * c.BlockOutChannels[0] }

// CrossAttentionLayers counts the cross-attention layers in execution
// order (down blocks, mid block, up blocks): 16 for SD 1.x, the count
// NeTI's per-layer conditioning indexes.
func (c UNet) CrossAttentionLayers() int {
	n := 1 // mid block
	for _, t := range c.DownBlockTypes {
		if t == CrossAttnDownBlock2D {
			n += c.LayersPerBlock
		}
	}
	for _, t := range c.UpBlockTypes {
		if t == CrossAttnUpBlock2D {
			n += c.LayersPerBlock + 1
		}
	}
	return n
}
