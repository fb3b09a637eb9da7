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

// TestLayoutAxes walks the layout copies over every axis and axis order
// (each gives the kernel a different outer/inner split or stride pattern),
// and a chain of them whose intermediates are stored as float16 in the f16
// subtests.
func TestLayoutAxes(t *testing.T) {
	chain := func(b *Builder) {
		x := b.Input("x", 2, 6, 4, 5)
		s := b.Slice(x, 1, 1, 4)      // [2 3 4 5]
		u := b.Upsample2x(s)          // [2 3 8 10]
		p := b.Permute(u, 0, 2, 3, 1) // [2 8 10 3]
		d := b.Pad(p, -1, 1, 5)       // [2 8 10 5]
		c := b.Concat(d, b.Input("z", 2, 8, 10, 2), -1)
		b.Output("y", b.Slice(c, 2, 3, 9))
	}
	var cases []opCase
	shape := []int{3, 5, 4}
	for axis := range shape {
		other := append([]int(nil), shape...)
		other[axis] = 2
		cases = append(cases,
			opCase{name: caseName("concat", axis), build: func(b *Builder) {
				b.Output("y", b.Concat(b.Input("a", shape...), b.Input("b", other...), axis))
			}},
			opCase{name: caseName("slice", axis), build: func(b *Builder) {
				b.Output("y", b.Slice(b.Input("x", shape...), axis, 1, 3))
			}},
			opCase{name: caseName("slice_head", axis), build: func(b *Builder) {
				b.Output("y", b.Slice(b.Input("x", shape...), axis, 0, 1))
			}},
			opCase{name: caseName("slice_tail", axis), build: func(b *Builder) {
				b.Output("y", b.Slice(b.Input("x", shape...), axis, 1, shape[axis]))
			}},
			opCase{name: caseName("pad", axis), build: func(b *Builder) {
				b.Output("y", b.Pad(b.Input("x", shape...), axis, 1, shape[axis]+3))
			}},
			opCase{name: caseName("pad_head", axis), build: func(b *Builder) {
				b.Output("y", b.Pad(b.Input("x", shape...), axis, 0, shape[axis]+2))
			}},
			opCase{name: caseName("pad_tail", axis), build: func(b *Builder) {
				b.Output("y", b.Pad(b.Input("x", shape...), axis, 2, shape[axis]+2))
			}},
		)
	}
	// Every order of a rank-3 tensor, the identity, and ranks 1, 5 and 6
	// (the kernel's maximum: no leading dimensions of 1).
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, perm := range perms {
		cases = append(cases, opCase{name: caseName("permute", perm[0], perm[1], perm[2]), build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", shape...), perm...))
		}})
	}
	cases = append(cases,
		opCase{name: "permute_rank1", build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", 300), 0))
		}},
		opCase{name: "permute_rank5", build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", 2, 3, 4, 2, 5), 4, 2, 0, 3, 1))
		}},
		opCase{name: "permute_rank6", build: func(b *Builder) {
			b.Output("y", b.Permute(b.Input("x", 2, 3, 2, 4, 3, 5), 5, 4, 3, 2, 1, 0))
		}},
		opCase{name: "upsample_1x1", build: func(b *Builder) {
			b.Output("y", b.Upsample2x(b.Input("x", 3, 2, 1, 1)))
		}},
		opCase{name: "upsample_wide", build: func(b *Builder) {
			b.Output("y", b.Upsample2x(b.Input("x", 1, 1, 3, 70)))
		}},
		opCase{name: "chain", build: chain},
	)
	// The chain's intermediates can all be float16: only layout ops touch
	// them. (runOpCase's f16 check alone would pass with just the inputs
	// and outputs half.)
	b := NewBuilder()
	chain(b)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if h := halfActivations(g); len(h) != len(g.Tensors) {
		t.Errorf("chain: %d of %d tensors can be float16", len(h), len(g.Tensors))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
}

// Fractional timesteps (a scheduler's interpolated t) must reach the
// kernel exactly: float16 would round 999.25 to 999 (spacing 0.5 there),
// moving sin(t) by ~0.25, so the f16 subtest fails if t were stored as
// float16. The embedding itself is stored as float16 there.
func TestTimestepFractional(t *testing.T) {
	steps := func(r *rand.Rand, n int) []float32 {
		v := []float32{999.25, 980.75, 500.125, 0.5, 1.375, 640.625}
		out := make([]float32, n)
		for i := range out {
			out[i] = v[(i+r.Intn(len(v)))%len(v)]
		}
		return out
	}
	build := func(b *Builder) {
		b.Output("y", b.TimestepEmbedding(b.Input("t", 6), 64, true, 1))
	}
	b := NewBuilder()
	build(b)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	h := halfActivations(g)
	for _, tn := range g.Tensors {
		if want := tn.Name() != "t"; h[tn.id] != want {
			t.Errorf("%s: float16 %v, want %v", tn.Name(), h[tn.id], want)
		}
	}
	runOpCase(t, opCase{name: "timestep_fractional", build: build,
		init: map[string]func(*rand.Rand, int) []float32{"t": steps}, tol: timestepTol})
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
