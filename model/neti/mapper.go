// Package neti implements NeTI's space-time conditioning on the graph op
// set: the mapper of a concept evaluated for many (timestep, layer) pairs
// at once, and the text encoding with the mapper's token embedding at the
// placeholder and the textual bypass before the final layer norm, giving a
// keys context and a values context per cross-attention layer.
package neti

import (
	"fmt"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/plugin"
)

// BuildMapper adds a concept's mapper to b: t [n] (raw timesteps 0..999),
// layer [n] (cross-attention index 0..15) and keep [n, hidden] (1 for the
// hidden units kept, 0 for those truncated or dropped by nested dropout)
// -> [n, output width]: the token embedding then, with the bypass, the
// bypass vector. Weights are named "<prefix>.<NeTI state_dict name>".
func BuildMapper(b *graph.Builder, c *plugin.Concept, prefix string, t, layer, keep *graph.Tensor) *graph.Tensor {
	if c.Kind != plugin.KindNeTI || c.Weights == nil {
		b.Errorf("neti: concept %s is not a mapper concept", c.Token)
		return t
	}
	defer b.Scope(prefix)()
	p := map[string]*graph.Tensor{}
	for _, nt := range c.Weights.Named() {
		p[nt.Name] = b.Weight(nt.Name, nt.Tensor.Shape...)
	}
	return mapperWith(b, c, p, b.Weight("fourier.w", c.Fourier.NumW, 2), t, layer, keep)
}

// MapperWeights serves a concept's tensors to a program built with
// BuildMapper under prefix.
func MapperWeights(c *plugin.Concept, prefix string) graph.WeightSource {
	return func(name string, shape []int) ([]float32, error) {
		local, ok := cutPrefix(name, prefix+".")
		if !ok {
			return nil, fmt.Errorf("neti: %s is not a weight of mapper %s", name, prefix)
		}
		if local == "fourier.w" {
			return c.Fourier.W, nil
		}
		t := c.Weights.Get(local)
		if t == nil {
			return nil, fmt.Errorf("neti: concept %s has no tensor %s", c.Token, local)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(shape) {
			return nil, fmt.Errorf("neti: concept %s: %s is %v, the mapper needs %v", c.Token, local, t.Shape, shape)
		}
		return t.Data, nil
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// Keep returns the [n, hidden] keep-mask for inference truncation: units
// [trunc:] are zeroed; trunc < 0 or >= hidden keeps everything.
func Keep(n, hidden, trunc int) []float32 {
	m := make([]float32, n*hidden)
	for r := 0; r < n; r++ {
		for j := 0; j < hidden; j++ {
			if trunc < 0 || j < trunc {
				m[r*hidden+j] = 1
			}
		}
	}
	return m
}
