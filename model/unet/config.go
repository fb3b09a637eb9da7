package unet

import (
	"fmt"

	"github.com/neti-project/neti/model/config"
)

// FromConfig takes the UNet's structure from a unet/config.json (already
// validated by package config, which rejects features this builder lacks).
func FromConfig(c config.UNet) (Config, error) {
	tl := 1
	for _, n := range c.TransformerLayersPerBlock {
		if n != 1 {
			return Config{}, fmt.Errorf("unet: transformer_layers_per_block %v is not supported (SD 1.x/2.x use 1)", c.TransformerLayersPerBlock)
		}
	}
	return Config{
		InChannels: c.InChannels, OutChannels: c.OutChannels,
		DownBlockTypes: c.DownBlockTypes, UpBlockTypes: c.UpBlockTypes,
		BlockOutChannels: c.BlockOutChannels, LayersPerBlock: c.LayersPerBlock,
		Heads: c.NumAttentionHeads, CrossAttentionDim: c.CrossAttentionDim,
		NormGroups: c.NormNumGroups, NormEps: float32(c.NormEps),
		UseLinearProjection: c.UseLinearProjection, FlipSinToCos: c.FlipSinToCos,
		FreqShift: float32(c.FreqShift), TransformerLayers: tl,
	}, nil
}
