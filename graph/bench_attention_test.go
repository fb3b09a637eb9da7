package graph

import "testing"

// BenchmarkAttention times the fused attention kernel alone and reports
// GFLOPS counting its two matrix products, 2*nq*nk*(dh+dhv) per head and
// batch (4*nq*nk*dh when the head dims agree).
//
// The SD 1.5 shapes are its first block's self-attention on a 64x64 latent
// (4096 tokens, 8 heads of 40, one batch: about 21 GFLOP, tens of seconds
// per run on lavapipe), the same on a 32x32 latent, its cross-attention to
// the 77 text tokens, and its deepest head dim; the tiny ones are the
// built-in test model's UNet and CLIP attention, and the shapes_ ones the
// built-in sd-shapes model's UNet (16x16 latent, batch 2 for CFG).
func BenchmarkAttention(b *testing.B) {
	for _, s := range []struct {
		name string
		attnShape
	}{
		{"sd15_self_4096_h8_d40", attnShape{batch: 1, nq: 4096, nk: 4096, heads: 8, dh: 40, dhv: 40}},
		{"sd15_self_1024_h8_d40", attnShape{batch: 1, nq: 1024, nk: 1024, heads: 8, dh: 40, dhv: 40}},
		{"sd15_cross_4096x77_h8_d40", attnShape{batch: 1, nq: 4096, nk: 77, heads: 8, dh: 40, dhv: 40}},
		{"sd15_self_256_h8_d160", attnShape{batch: 1, nq: 256, nk: 256, heads: 8, dh: 160, dhv: 160}},
		{"tiny_unet_self_256_h8_d8", attnShape{batch: 2, nq: 256, nk: 256, heads: 8, dh: 8, dhv: 8}},
		{"tiny_clip_77_h4_d8_causal", attnShape{batch: 1, nq: 77, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true}},
		{"shapes_self_256_h2_d16", attnShape{batch: 2, nq: 256, nk: 256, heads: 2, dh: 16, dhv: 16}},
		{"shapes_cross_256x77_h2_d16", attnShape{batch: 2, nq: 256, nk: 77, heads: 2, dh: 16, dhv: 16}},
		{"shapes_self_64_h2_d32", attnShape{batch: 2, nq: 64, nk: 64, heads: 2, dh: 32, dhv: 32}},
		{"shapes_cross_64x77_h2_d32", attnShape{batch: 2, nq: 64, nk: 77, heads: 2, dh: 32, dhv: 32}},
		{"shapes_cross_16x77_h2_d32", attnShape{batch: 2, nq: 16, nk: 77, heads: 2, dh: 32, dhv: 32}},
	} {
		flops := 2 * float64(s.batch) * float64(s.heads) * float64(s.nq) * float64(s.nk) * float64(s.dh+s.dhv)
		b.Run(s.name, func(b *testing.B) { benchProgram(b, flops, attentionCase(s.attnShape).build) })
	}
}
