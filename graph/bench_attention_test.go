package graph

import (
	"math/rand"
	"testing"
)

// BenchmarkAttention times the fused attention kernel alone and reports
// GFLOPS counting the two matrix products (2*nq*nk*(dh+dhv) per head and
// batch, 4*nq*nk*dh when the head dims agree).
//
// The SD 1.5 shape is its first-block self-attention on a 64x64 latent
// (4096 tokens, 8 heads of 40) with one batch; on lavapipe one run of it
// takes tens of seconds, so it only runs with -benchtime 1x in mind, and
// the 1024-token variant (a 32x32 latent) is the quick measure.
func BenchmarkAttention(b *testing.B) {
	for _, s := range []struct {
		name string
		attnShape
	}{
		{"sd15_4096x4096_h8_d40", attnShape{batch: 1, nq: 4096, nk: 4096, heads: 8, dh: 40, dhv: 40}},
		{"sd15_1024x1024_h8_d40", attnShape{batch: 1, nq: 1024, nk: 1024, heads: 8, dh: 40, dhv: 40}},
		{"sd15_cross_1024x77_h8_d40", attnShape{batch: 1, nq: 1024, nk: 77, heads: 8, dh: 40, dhv: 40}},
		{"sd15_256x256_h8_d160", attnShape{batch: 1, nq: 256, nk: 256, heads: 8, dh: 160, dhv: 160}},
		{"tiny_64x64_h2_d16", attnShape{batch: 2, nq: 64, nk: 64, heads: 2, dh: 16, dhv: 16}},
		{"clip_tiny_77_h4_d8_causal", attnShape{batch: 1, nq: 77, nk: 77, heads: 4, dh: 8, dhv: 8, causal: true}},
	} {
		b.Run(s.name, func(b *testing.B) { benchAttention(b, s.attnShape) })
	}
}

func benchAttention(b *testing.B, s attnShape) {
	dev := device(b)
	bl := NewBuilder()
	attentionCase(s).build(bl)
	g, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(dev, g, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	rng := rand.New(rand.NewSource(1))
	for _, in := range g.Inputs() {
		if err := p.SetInput(in.Name(), randVec(rng, in.Numel(), 1)); err != nil {
			b.Fatal(err)
		}
	}
	// One untimed run compiles nothing further but warms caches and
	// catches errors before timing.
	if err := p.Run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	flops := 2 * float64(s.batch) * float64(s.heads) * float64(s.nq) * float64(s.nk) * float64(s.dh+s.dhv)
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(flops*float64(b.N)/sec/1e9, "GFLOPS")
	}
}
