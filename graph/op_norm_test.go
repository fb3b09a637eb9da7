package graph

import (
	"math/rand"
	"testing"
)

// offsetVec is N(mean, scale^2): a large mean next to a small spread is
// where a one-pass sum/sum-of-squares variance cancels.
func offsetVec(mean, scale float32) func(*rand.Rand, int) []float32 {
	return func(r *rand.Rand, n int) []float32 {
		v := randVec(r, n, scale)
		for i := range v {
			v[i] += mean
		}
		return v
	}
}

func TestGroupNorm(t *testing.T) {
	for _, s := range []struct {
		name   string
		shape  []int
		groups int
		eps    float32
		silu   bool
		init   func(*rand.Rand, int) []float32 // x (nil: N(0,1))
		tol    float64
	}{
		{name: "one_per_group", shape: []int{1, 4}, groups: 4, eps: 1e-5},
		{name: "rank2", shape: []int{3, 6}, groups: 3, eps: 1e-5},
		{name: "rank3", shape: []int{2, 8, 77}, groups: 4, eps: 1e-6, silu: true},
		{name: "odd", shape: []int{2, 6, 5, 5}, groups: 3, eps: 1e-5, silu: true},
		{name: "instance", shape: []int{1, 5, 33, 1}, groups: 5, eps: 1e-5},
		{name: "one_group", shape: []int{2, 3, 40, 40}, groups: 1, eps: 1e-5, silu: true},
		{name: "unet_tiny", shape: []int{2, 32, 16, 16}, groups: 8, eps: 1e-5, silu: true},
		{name: "unet_tiny_nosilu", shape: []int{2, 64, 8, 8}, groups: 8, eps: 1e-5},
		// 7500 elements per group: a full chunk and a short one.
		{name: "two_chunks", shape: []int{1, 6, 50, 50}, groups: 2, eps: 1e-6},
		{name: "offset_mean", shape: []int{1, 6, 50, 50}, groups: 2, eps: 1e-6, init: offsetVec(30, 1), tol: 3e-5},
		{name: "tiny_spread", shape: []int{2, 8, 9, 7}, groups: 4, eps: 1e-6, init: offsetVec(0, 1e-3)},
		// Planes of 2025 elements (not whole vec4s: the CPU kernels' scalar
		// path), 6075 per group: two chunks.
		{name: "two_chunks_odd", shape: []int{1, 6, 45, 45}, groups: 2, eps: 1e-6, silu: true},
		// Planes of one vec4.
		{name: "plane4", shape: []int{2, 64, 2, 2}, groups: 8, eps: 1e-5, silu: true},
		// SD VAE channel layout (32 groups of 128 channels) on a 128x128
		// plane: 16 chunks per group.
		{name: "vae_128ch", shape: []int{1, 128, 128, 128}, groups: 32, eps: 1e-6, silu: true},
		// SD VAE at 512x512 (its 512-channel blocks): 32 groups of 65536
		// elements, 16 chunks each.
		{name: "vae_512ch", shape: []int{1, 512, 64, 64}, groups: 32, eps: 1e-6},
		// Groups of 262144 elements (the VAE's full-resolution blocks hold
		// that many and more): 64 chunks, and an offset mean.
		{name: "big_group", shape: []int{1, 32, 128, 128}, groups: 2, eps: 1e-6, silu: true, init: offsetVec(5, 1), tol: 3e-5},
	} {
		s := s
		// Both kernel families: the GPU one (shared-memory merges) and the
		// CPU one (subgroup merges, no barriers; a group of one chunk in
		// one fused dispatch).
		for _, kernels := range []string{"gpu", "cpu"} {
			t.Run(kernels+"/"+s.name, func(t *testing.T) {
				runOpCase(t, opCase{
					name: caseName("groupnorm", s.name),
					build: func(b *Builder) {
						c := s.shape[1]
						y := b.GroupNorm(b.Input("x", s.shape...), b.Input("gamma", c), b.Input("beta", c), s.groups, s.eps, s.silu)
						b.Output("y", y)
					},
					init:    xInit(s.init),
					tol:     s.tol,
					kernels: kernels,
				})
			})
		}
	}
}

// TestGroupNormChain puts groupnorms of different sizes in one program, the
// larger one last: they share one scratch buffer, which must be sized for
// the largest and reused only after the previous node's reads.
func TestGroupNormChain(t *testing.T) {
	for _, kernels := range []string{"gpu", "cpu"} {
		t.Run(kernels, func(t *testing.T) {
			runOpCase(t, opCase{
				name: "groupnorm_chain",
				build: func(b *Builder) {
					x := b.Input("x", 2, 8, 6, 6)
					h := b.GroupNorm(x, b.Input("g1", 8), b.Input("b1", 8), 4, 1e-5, true)
					h = b.Conv2d(h, b.Input("w", 16, 8, 3, 3), nil, Pad(1, 1))
					h2 := b.GroupNorm(h, b.Input("g2", 16), b.Input("b2", 16), 8, 1e-5, false)
					big := b.Input("big", 2, 16, 64, 64)
					h3 := b.GroupNorm(big, b.Input("g3", 16), b.Input("b3", 16), 2, 1e-6, true)
					b.Output("y", h2)
					b.Output("big_y", h3)
					b.Output("first", h)
				},
				kernels: kernels,
			})
		})
	}
}

func TestGroupNormShapeErrors(t *testing.T) {
	for _, c := range []struct {
		name          string
		x             []int
		groups, gamma int
	}{
		{"not_divisor", []int{1, 6, 4, 4}, 4, 6},
		{"zero_groups", []int{1, 6, 4, 4}, 0, 6},
		{"rank1", []int{6}, 2, 6},
		{"gamma", []int{1, 6, 4, 4}, 2, 5},
	} {
		b := NewBuilder()
		b.Output("y", b.GroupNorm(b.Input("x", c.x...), b.Input("g", c.gamma), b.Input("b", c.gamma), c.groups, 1e-5, false))
		if _, err := b.Build(); err == nil {
			t.Errorf("%s: no build error", c.name)
		}
	}
}

func TestGroupNormChunking(t *testing.T) {
	for _, gsize := range []int{1, 2, 255, 4096, 4097, 7500, 65536, 1 << 20, 1<<20 + 1, 8 << 20, 32<<20 - 3} {
		chunk, n := gnChunking(gsize)
		switch {
		case chunk <= 0 || chunk%gnGroup != 0:
			t.Errorf("gsize %d: chunk %d not a positive multiple of %d", gsize, chunk, gnGroup)
		case n < 1 || n > gnMaxParts:
			t.Errorf("gsize %d: %d chunks, want 1..%d", gsize, n, gnMaxParts)
		case (n-1)*chunk >= gsize || n*chunk < gsize:
			t.Errorf("gsize %d: %d chunks of %d do not tile it exactly once", gsize, n, chunk)
		}
	}
}

func TestLayerNorm(t *testing.T) {
	for _, s := range []struct {
		name  string
		shape []int
		eps   float32
		init  func(*rand.Rand, int) []float32
		tol   float64
	}{
		{name: "unit", shape: []int{1}, eps: 1e-5},
		{name: "row1", shape: []int{1, 7}, eps: 1e-5},
		{name: "clip_tiny", shape: []int{3, 77, 32}, eps: 1e-5},
		{name: "odd", shape: []int{5, 129}, eps: 1e-6},
		{name: "clip_sd", shape: []int{2, 77, 768}, eps: 1e-5},
		{name: "unet_320", shape: []int{2, 256, 320}, eps: 1e-5},
		{name: "offset_mean", shape: []int{4, 300}, eps: 1e-5, init: offsetVec(40, 1), tol: 3e-5},
		// Rows wider than the shared-memory cache (layernorm.comp) and the
		// register cache (layernorm_cpu.comp) reread global memory, as
		// scalars and as vec4.
		{name: "wide", shape: []int{3, 4096 + 131}, eps: 1e-5},
		{name: "wide_quads", shape: []int{3, 4096 + 132}, eps: 1e-5},
		// More than 65535 rows: the grid folds into x and y.
		{name: "many_rows", shape: []int{65537, 3}, eps: 1e-5},
		// A row per lane (layernorm_cpu.comp) with the last workgroup's
		// units running out and a partial last subgroup of rows.
		{name: "rows_uneven", shape: []int{1001, 48}, eps: 1e-5},
	} {
		// Both kernel families: layernorm.comp ("gpu") and
		// layernorm_cpu.comp ("cpu"), which lnCPUFor splits differently by
		// shape (a row per lane or per subgroup, rows cached or streamed).
		for _, kernels := range []string{"gpu", "cpu"} {
			t.Run(kernels+"/"+s.name, func(t *testing.T) {
				runOpCase(t, opCase{
					name: caseName("layernorm", s.name),
					build: func(b *Builder) {
						d := s.shape[len(s.shape)-1]
						b.Output("y", b.LayerNorm(b.Input("x", s.shape...), b.Input("gamma", d), b.Input("beta", d), s.eps))
					},
					init:    xInit(s.init),
					tol:     s.tol,
					kernels: kernels,
				})
			})
		}
	}
	b := NewBuilder()
	b.LayerNorm(b.Input("x", 2, 8), b.Input("g", 7), b.Input("b", 8), 1e-5)
	if b.Err() == nil {
		t.Fatal("gamma of the wrong width gave no error")
	}
}

// xInit is an opCase init that draws the input x with f (nil: the
// default normal values).
func xInit(f func(*rand.Rand, int) []float32) map[string]func(*rand.Rand, int) []float32 {
	if f == nil {
		return nil
	}
	return map[string]func(*rand.Rand, int) []float32{"x": f}
}
