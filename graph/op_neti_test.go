package graph

import (
	"math/rand"
	"testing"
)

func TestNeTIOps(t *testing.T) {
	steps := func(r *rand.Rand, n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Intn(1000))
		}
		return v
	}
	layers := func(r *rand.Rand, n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.Intn(16))
		}
		return v
	}
	fourierW := func(r *rand.Rand, n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			s := 0.03
			if i%2 == 1 {
				s = 2
			}
			v[i] = float32(r.NormFloat64() * s)
		}
		return v
	}
	init := map[string]func(*rand.Rand, int) []float32{"t": steps, "l": layers, "w": fourierW}
	cases := []opCase{
		{name: "fourier_1024", build: func(b *Builder) {
			b.Output("y", b.Fourier(b.Input("t", 37), b.Input("l", 37), b.Input("w", 1024, 2)))
		}, init: init},
		{name: "fourier_odd", build: func(b *Builder) {
			b.Output("y", b.Fourier(b.Input("t", 3), b.Input("l", 3), b.Input("w", 300, 2)))
		}, init: init},
		{name: "l2norm", build: func(b *Builder) {
			b.Output("y", b.L2Normalize(b.Input("x", 5, 1536), 0.37))
		}},
		{name: "l2norm_small", build: func(b *Builder) {
			b.Output("y", b.L2Normalize(b.Input("x", 3, 2, 7), 2))
		}},
		{name: "rownorm", build: func(b *Builder) {
			b.Output("y", b.RowNorm(b.Input("x", 16, 77, 33)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
}
