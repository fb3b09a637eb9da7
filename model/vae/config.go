package vae

import "github.com/neti-project/neti/model/config"

// FromConfig takes the autoencoder's structure from a vae/config.json.
func FromConfig(c config.VAE) Config {
	return Config{
		InChannels: c.InChannels, OutChannels: c.OutChannels, BlockOutChannels: c.BlockOutChannels,
		LayersPerBlock: c.LayersPerBlock, LatentChannels: c.LatentChannels, NormGroups: c.NormNumGroups,
		ScalingFactor: float32(c.ScalingFactor),
	}
}
