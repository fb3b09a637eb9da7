package graph

import (
	"math/rand"
	"testing"
)

func TestSoftmax(t *testing.T) {
	for _, s := range []struct {
		rows, d int
		scale   float32 // spread of the logits
	}{
		{1, 1, 1},
		{3, 7, 1},
		{300, 8, 1},     // many narrow rows per workgroup
		{64, 77, 1},     // CLIP-length rows
		{5, 128, 1},     // one row per workgroup, exactly
		{2, 129, 1},     // one element past the threads
		{7, 1000, 1},    // several elements per thread
		{1, 4097, 1},    // a 64x64 latent's key count plus one
		{33, 50, 60},    // logits far beyond exp's range: needs the max
		{4, 300, -1e-3}, // nearly uniform rows
	} {
		s := s
		c := opCase{
			name: caseName("softmax", s.rows, s.d, s.scale),
			build: func(b *Builder) {
				b.Output("y", b.Softmax(b.Input("x", s.rows, s.d)))
			},
			init: map[string]func(*rand.Rand, int) []float32{
				"x": func(r *rand.Rand, n int) []float32 { return randVec(r, n, s.scale) },
			},
		}
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
	// Higher-rank input: softmax runs over the last dimension only.
	runOpCase(t, opCase{name: "softmax_rank4", build: func(b *Builder) {
		b.Output("y", b.Softmax(b.Input("x", 2, 3, 5, 11)))
	}})
}

func TestSoftmaxThreads(t *testing.T) {
	for d := 1; d <= 1000; d++ {
		tpr := softmaxThreads(d)
		if tpr&(tpr-1) != 0 || softmaxWorkgroup%tpr != 0 {
			t.Fatalf("softmaxThreads(%d) = %d: not a power of two dividing %d", d, tpr, softmaxWorkgroup)
		}
		if tpr < min(d, softmaxWorkgroup) || (tpr > 1 && tpr/2 >= d) {
			t.Fatalf("softmaxThreads(%d) = %d: not the smallest power of two covering the row", d, tpr)
		}
	}
}

func TestGEGLU(t *testing.T) {
	for _, s := range [][]int{
		{1, 2},
		{3, 10},
		{1, 77, 2 * 33},
		{2, 64, 2 * 1280}, // SD 1.5's first-block feed-forward width
		{5, 3, 2 * 257},
	} {
		s := s
		c := opCase{
			name: caseName("geglu", s),
			build: func(b *Builder) {
				b.Output("y", b.GEGLU(b.Input("x", s...)))
			},
			// Gates spread over erf's whole range, both branches of erf_.
			init: map[string]func(*rand.Rand, int) []float32{
				"x": func(r *rand.Rand, n int) []float32 { return randVec(r, n, 3) },
			},
		}
		t.Run(c.name, func(t *testing.T) { runOpCase(t, c) })
	}
	b := NewBuilder()
	b.GEGLU(b.Input("x", 4, 7))
	if b.Err() == nil {
		t.Fatal("odd last dimension gave no error")
	}
}
