package graph

import (
	"math/rand"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// benchProgram compiles the graph that build makes, sets every input to
// random values, runs it once (lavapipe compiles shaders at the first
// dispatch) and then times b.N runs, reporting GFLOPS for flops per run.
func benchProgram(b *testing.B, flops float64, build func(*Builder)) {
	benchProgramWith(b, flops, Options{}, build)
}

func benchProgramWith(b *testing.B, flops float64, opts Options, build func(*Builder)) {
	b.Helper()
	dev := device(b)
	bld := NewBuilder()
	build(bld)
	g, err := bld.Build()
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(dev, g, nil, opts)
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
	if err := p.Run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := p.Run(); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(flops*float64(b.N)/el.Seconds()/1e9, "GFLOPS")
}

func BenchmarkMatMul(b *testing.B) {
	for _, s := range []struct {
		name    string
		m, n, k int
	}{
		{"1024x1024x1024", 1024, 1024, 1024},
		{"sd_attn_proj_4096x320x320", 4096, 320, 320},
		{"clip_77x768x768", 77, 768, 768},
	} {
		for _, kernels := range []string{"gpu", "cpu"} {
			b.Run(kernels+"/"+s.name, func(b *testing.B) {
				benchProgramWith(b, 2*float64(s.m)*float64(s.n)*float64(s.k), Options{Kernels: kernels}, func(bl *Builder) {
					bl.Output("c", bl.MatMul(bl.Input("a", 1, s.m, s.k), bl.Input("b", 1, s.k, s.n), false, false))
				})
			})
			b.Run(kernels+"/linear_"+s.name, func(b *testing.B) {
				benchProgramWith(b, 2*float64(s.m)*float64(s.n)*float64(s.k), Options{Kernels: kernels}, func(bl *Builder) {
					bl.Output("c", bl.Linear(bl.Input("a", 1, s.m, s.k), bl.Input("w", s.n, s.k), nil))
				})
			})
		}
	}
}

func BenchmarkConv2d(b *testing.B) {
	for _, s := range []struct {
		name          string
		n, c, h, w, o int
	}{
		{"unet_tiny_2x32x16x16", 2, 32, 16, 16, 32},
		{"vae_1x128x64x64", 1, 128, 64, 64, 128},
		// SD 1.5 down_blocks.0 channels; 32x32 (a 256px image) instead of
		// 64x64 keeps one run to seconds, not a minute, on lavapipe.
		{"sd15_1x320x32x32", 1, 320, 32, 32, 320},
	} {
		b.Run(s.name, func(b *testing.B) {
			flops := 2 * float64(s.n*s.o*s.h*s.w) * float64(s.c*9)
			benchProgram(b, flops, func(bl *Builder) {
				x := bl.Input("x", s.n, s.c, s.h, s.w)
				y := bl.Conv2d(x, bl.Input("w", s.o, s.c, 3, 3), bl.Input("bias", s.o), Pad(1, 1))
				bl.Output("y", y)
			})
		})
	}
}

// BenchmarkGonumSGEMM is the CPU yardstick for BenchmarkMatMul: gonum's
// pure-Go SGEMM on the same 1024^3 problem.
func BenchmarkGonumSGEMM(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewSource(1))
	mk := func() blas32.General {
		return blas32.General{Rows: n, Cols: n, Stride: n, Data: randVec(rng, n*n, 1)}
	}
	a, bm, c := mk(), mk(), mk()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, a, bm, 0, c)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(2*n*n*n*float64(b.N)/el.Seconds()/1e9, "GFLOPS")
}
