package graph

import (
	"math"
	"math/rand"
	"testing"
)

// timestepTol is looser than 1e-5 because sin(t*f) at t = 999 amplifies
// the last-ulp differences of exp() between any two fp32 implementations
// (torch's included) about a thousandfold; 1e-5 relative error of the
// argument is the best fp32 can promise there.
const timestepTol = 5e-5

func TestLayoutOps(t *testing.T) {
	ids := func(vocab int) func(*rand.Rand, int) []float32 {
		return func(r *rand.Rand, n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(r.Intn(vocab))
			}
			return v
		}
	}
	steps := func(r *rand.Rand, n int) []float32 {
		v := []float32{999, 500, 1, 0, 981, 20, 741}
		out := make([]float32, n)
		for i := range out {
			out[i] = v[(i+r.Intn(len(v)))%len(v)]
		}
		return out
	}
	cases := []opCase{
		{name: "concat_ch", build: func(b *Builder) {
			b.Output("y", b.Concat(b.Input("a", 2, 3, 5, 7), b.Input("b", 2, 4, 5, 7), 1))
		}},
		{name: "concat_last", build: func(b *Builder) {
			b.Output("y", b.Concat(b.Input("a", 3, 1), b.Input("b", 3, 6), -1))
		}},
		{name: "slice_mid", build: func(b *Builder) {
			b.Output("y", b.Slice(b.Input("x", 2, 8, 3, 3), 1, 4, 8))
		}},
		{name: "slice_last", build: func(b *Builder) {
			b.Output("y", b.Slice(b.Input("x", 5, 64), -1, 0, 32))
		}},
		{name: "pad", build: func(b *Builder) {
			b.Output("y", b.Pad(b.Input("x", 2, 3, 5), 1, 2, 7))
		}},
		{name: "upsample", build: func(b *Builder) {
			b.Output("y", b.Upsample2x(b.Input("x", 2, 3, 5, 7)))
		}},
		{name: "permute_nchw_nhwc", build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", 2, 3, 4, 5), 0, 2, 3, 1))
		}},
		{name: "permute_heads", build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", 2, 7, 3, 5), 0, 2, 1, 3))
		}},
		{name: "permute_2d", build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", 33, 17), 1, 0))
		}},
		{name: "embedding", build: func(b *Builder) {
			b.Output("y", b.Embedding(b.Input("table", 50, 9), b.Input("ids", 3, 7)))
		}, init: map[string]func(*rand.Rand, int) []float32{"ids": ids(50)}},
		{name: "timestep_flip", build: func(b *Builder) {
			b.Output("y", b.TimestepEmbedding(b.Input("t", 7), 32, true, 0))
		}, init: map[string]func(*rand.Rand, int) []float32{"t": steps}, tol: timestepTol},
		{name: "timestep_shift_odd", build: func(b *Builder) {
			b.Output("y", b.TimestepEmbedding(b.Input("t", 5), 321, false, 1))
		}, init: map[string]func(*rand.Rand, int) []float32{"t": steps}, tol: timestepTol},
		{name: "sum_mid", build: func(b *Builder) {
			b.Output("y", b.Sum(b.Input("x", 3, 300, 5), 1))
		}},
		{name: "mean_last", build: func(b *Builder) {
			b.Output("y", b.Mean(b.Input("x", 4, 77), -1))
		}},
		{name: "mean_long", build: func(b *Builder) {
			b.Output("y", b.Mean(b.Input("x", 65536), 0))
		}, tol: 1e-4},
		{name: "sum_rows_serial", build: func(b *Builder) {
			b.Output("y", b.Sum(b.Input("x", 513, 300), 0))
		}},
		{name: "sum_few_outputs_long_axis", build: func(b *Builder) {
			b.Output("y", b.Sum(b.Input("x", 2, 5000, 3), 1))
		}, tol: 1e-4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
}

// An id outside the table must not pass silently on the GPU: its row is NaN.
func TestEmbeddingBadIDIsNaN(t *testing.T) {
	dev := device(t)
	b := NewBuilder()
	b.Output("y", b.Embedding(b.Input("table", 4, 3), b.Input("ids", 3)))
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(dev, g, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetInput("table", make([]float32, 12)); err != nil {
		t.Fatal(err)
	}
	if err := p.SetInput("ids", []float32{1, 4, -1}); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	y, err := p.Output("y")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range y {
		if bad := i >= 3; bad != math.IsNaN(float64(v)) {
			t.Errorf("y[%d] = %v", i, v)
		}
	}
}
