package config

// The SD 1.x configs (those of runwayml/stable-diffusion-v1-5, identical in
// architecture to CompVis v1-4) used for single-file checkpoints, which
// carry weights but no configs. Each call returns a fresh value.

// SD15TextEncoder is the CLIP ViT-L/14 text tower of SD 1.x.
func SD15TextEncoder() CLIPText {
	return CLIPText{
		Architectures:         []string{"CLIPTextModel"},
		ModelType:             "clip_text_model",
		HiddenSize:            768,
		IntermediateSize:      3072,
		NumHiddenLayers:       12,
		NumAttentionHeads:     12,
		MaxPositionEmbeddings: 77,
		VocabSize:             49408,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		ProjectionDim:         768,
		PadTokenID:            1,
		BOSTokenID:            0,
		EOSTokenID:            2,
		TorchDType:            "float32",
	}
}

// SD15UNet is the SD 1.x UNet2DConditionModel.
func SD15UNet() UNet {
	return UNet{
		ClassName:                 "UNet2DConditionModel",
		SampleSize:                64,
		InChannels:                4,
		OutChannels:               4,
		FlipSinToCos:              true,
		DownBlockTypes:            []string{CrossAttnDownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D, DownBlock2D},
		MidBlockType:              UNetMidBlock2DCrossAttn,
		UpBlockTypes:              []string{UpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D},
		BlockOutChannels:          []int{320, 640, 1280, 1280},
		LayersPerBlock:            2,
		AttentionHeadDim:          []int{8, 8, 8, 8},
		NumAttentionHeads:         []int{8, 8, 8, 8},
		CrossAttentionDim:         768,
		TransformerLayersPerBlock: []int{1, 1, 1, 1},
		NormNumGroups:             32,
		NormEps:                   1e-5,
		DownsamplePadding:         1,
		MidBlockScaleFactor:       1,
		ActFn:                     "silu",
		TimeEmbeddingType:         "positional",
		ResnetTimeScaleShift:      "default",
		ConvInKernel:              3,
		ConvOutKernel:             3,
	}
}

// SD15VAE is the SD 1.x AutoencoderKL.
func SD15VAE() VAE {
	return VAE{
		ClassName:        "AutoencoderKL",
		InChannels:       3,
		OutChannels:      3,
		DownBlockTypes:   []string{DownEncoderBlock2D, DownEncoderBlock2D, DownEncoderBlock2D, DownEncoderBlock2D},
		UpBlockTypes:     []string{UpDecoderBlock2D, UpDecoderBlock2D, UpDecoderBlock2D, UpDecoderBlock2D},
		BlockOutChannels: []int{128, 256, 512, 512},
		LayersPerBlock:   2,
		ActFn:            "silu",
		LatentChannels:   4,
		NormNumGroups:    32,
		SampleSize:       512,
		ScalingFactor:    0.18215,
		ForceUpcast:      true,
	}
}

// SD15Scheduler is the PNDM scheduler SD 1.x ships with.
func SD15Scheduler() Scheduler {
	s := DefaultScheduler(PNDM)
	s.BetaStart = 0.00085
	s.BetaEnd = 0.012
	s.BetaSchedule = "scaled_linear"
	s.SkipPRKSteps = true
	s.SetAlphaToOne = false
	s.StepsOffset = 1
	s.ClipSample = false
	return s
}
