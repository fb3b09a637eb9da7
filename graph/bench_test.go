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
	_, _, el, gpu := runBench(b, opts, build)
	b.ReportMetric(flops*float64(b.N)/el.Seconds()/1e9, "GFLOPS")
	// GPU time of the last run's kernels alone: what the kernel reaches in
	// a model, where one submit carries hundreds of dispatches.
	if gpu > 0 {
		b.ReportMetric(flops/gpu.Seconds()/1e9, "kernel-GFLOPS")
	}
}

// runBench compiles the graph that build makes (with a profile), sets
// every input to random values, runs it once (lavapipe compiles shaders at
// the first dispatch) and then times b.N runs. It returns the program (for
// its stats; closed when the benchmark ends), the wall time of the b.N
// runs and the GPU time of the last run's kernels.
func runBench(b *testing.B, opts Options, build func(*Builder)) (*Program, *Graph, time.Duration, time.Duration) {
	b.Helper()
	dev := device(b)
	bld := NewBuilder()
	build(bld)
	g, err := bld.Build()
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	weights := func(name string, shape []int) ([]float32, error) { return randVec(rng, numel(shape), 0.1), nil }
	opts.Profile = true // timestamps around each op: the kernel time, without submit overhead
	p, err := Compile(dev, g, weights, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
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
	var gpu time.Duration
	if ops, err := p.Profile(); err == nil {
		for _, o := range ops {
			gpu += o.Time
		}
	}
	return p, g, el, gpu
}

// BenchmarkMemoryBound times the memory-bound ops of an SD 1.5 512x512
// UNet (batch 2, the 64x64 level) with fp32 and fp16 activations,
// reporting effective GB/s: every node's inputs read once and output
// written once, at their storage size (halved where stored as float16).
func BenchmarkMemoryBound(b *testing.B) {
	const n, c, hw = 2, 320, 64 * 64
	cases := []struct {
		name  string
		build func(bl *Builder)
	}{
		{"add", func(bl *Builder) {
			bl.Output("y", bl.Add(bl.Input("a", n, c, hw), bl.Input("b", n, c, hw)))
		}},
		{"silu", func(bl *Builder) { bl.Output("y", bl.SiLU(bl.Input("x", n, c, hw))) }},
		{"groupnorm_silu", func(bl *Builder) {
			x := bl.Input("x", n, c, 64, 64)
			bl.Output("y", bl.GroupNorm(x, bl.Input("g", c), bl.Input("b", c), 32, 1e-5, true))
		}},
		{"layernorm", func(bl *Builder) {
			bl.Output("y", bl.LayerNorm(bl.Input("x", n*hw, c), bl.Input("g", c), bl.Input("b", c), 1e-5))
		}},
		{"geglu", func(bl *Builder) { bl.Output("y", bl.GEGLU(bl.Input("x", n*hw, 8*c))) }},
		{"upsample", func(bl *Builder) { bl.Output("y", bl.Upsample2x(bl.Input("x", n, 4*c, 16, 16))) }},
	}
	for _, tc := range cases {
		for _, act := range []string{ActivationsF32, ActivationsF16} {
			b.Run(tc.name+"/"+act, func(b *testing.B) {
				p, g, el, gpu := runBench(b, Options{Activations: act}, tc.build)
				if act == ActivationsF16 && p.halfActivationCount() == 0 {
					b.Skip("the device stores nothing as float16")
				}
				var bytes int64
				for _, nd := range g.Nodes {
					for _, t := range append(append([]*Tensor(nil), nd.In...), nd.Out) {
						bytes += storageBytes(t.Numel(), p.half[t.root().id])
					}
				}
				b.ReportMetric(float64(bytes)*float64(b.N)/el.Seconds()/1e9, "GB/s")
				if gpu > 0 {
					b.ReportMetric(float64(bytes)/gpu.Seconds()/1e9, "kernel-GB/s")
				}
			})
		}
	}
}

func BenchmarkMatMul(b *testing.B) {
	for _, s := range []struct {
		name    string
		m, n, k int
	}{
		{"1024x1024x1024", 1024, 1024, 1024},
		{"4096x4096x4096", 4096, 4096, 4096}, // GPUs only: minutes on lavapipe
		{"sd_attn_proj_4096x320x320", 4096, 320, 320},
		{"clip_77x768x768", 77, 768, 768},
	} {
		for _, kernels := range []string{"gpu", "cpu"} {
			if s.m >= 4096 && s.k >= 4096 && (kernels == "cpu" || device(b).Info().Type == "cpu") {
				continue
			}
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
			// A model's linear layer: the weight stored as fp16.
			b.Run(kernels+"/linear_f16w_"+s.name, func(b *testing.B) {
				benchProgramWith(b, 2*float64(s.m)*float64(s.n)*float64(s.k), Options{Kernels: kernels, Weights: WeightsF16}, func(bl *Builder) {
					bl.Output("c", bl.Linear(bl.Input("a", 1, s.m, s.k), bl.Weight("w", s.n, s.k), nil))
				})
			})
			// Activations stored as float16: a, b and c (every binding) halves.
			b.Run(kernels+"/f16a_"+s.name, func(b *testing.B) {
				benchProgramWith(b, 2*float64(s.m)*float64(s.n)*float64(s.k), Options{Kernels: kernels, Activations: ActivationsF16}, func(bl *Builder) {
					bl.Output("c", bl.MatMul(bl.Input("a", 1, s.m, s.k), bl.Input("b", 1, s.k, s.n), false, false))
				})
			})
			// A model's linear layer run all in fp16 storage: weight,
			// input and output.
			b.Run(kernels+"/linear_f16wa_"+s.name, func(b *testing.B) {
				benchProgramWith(b, 2*float64(s.m)*float64(s.n)*float64(s.k), Options{Kernels: kernels, Weights: WeightsF16, Activations: ActivationsF16}, func(bl *Builder) {
					bl.Output("c", bl.Linear(bl.Input("a", 1, s.m, s.k), bl.Weight("w", s.n, s.k), nil))
				})
			})
		}
	}
}

// convBenchShapes are BenchmarkConv2d's and BenchmarkConv2dBwdInput's
// problems: the tiny SD UNet's and VAE's convolutions (the test models, so
// what dominates test time on lavapipe) and bigger SD-like ones.
var convBenchShapes = []struct {
	name          string
	n, c, h, w, o int
	k, stride     int
}{
	{"unet_tiny_2x32x16x16", 2, 32, 16, 16, 32, 3, 1},
	{"unet_tiny_2x32x16x16_1x1", 2, 32, 16, 16, 32, 1, 1},
	{"unet_tiny_down_2x32x16x16_s2", 2, 32, 16, 16, 32, 3, 2},
	{"unet_tiny_1x64x16x16", 1, 64, 16, 16, 64, 3, 1},
	{"unet_tiny_2x64x4x4", 2, 64, 4, 4, 64, 3, 1},
	{"unet_tiny_2x64x2x2", 2, 64, 2, 2, 64, 3, 1},
	{"vae_tiny_1x64x64x64", 1, 64, 64, 64, 64, 3, 1},
	{"vae_1x128x64x64", 1, 128, 64, 64, 128, 3, 1},
	// SD 1.5 down_blocks.0 channels; 32x32 (a 256px image) instead of
	// 64x64 keeps one run to seconds, not a minute, on lavapipe.
	{"sd15_1x320x32x32", 1, 320, 32, 32, 320, 3, 1},
}

// convHalfBench says which of convBenchShapes also run with float16
// storage: the model-sized ones, where the halved traffic could show (the
// tiny ones would only add lavapipe compile time).
func convHalfBench(name string) bool {
	return name == "vae_1x128x64x64" || name == "sd15_1x320x32x32"
}

// BenchmarkConv2d reports GFLOPS counted as 2 per multiply-add of the
// convolution proper (padding taps included), for both kernel families.
func BenchmarkConv2d(b *testing.B) {
	for _, s := range convBenchShapes {
		for _, kernels := range []string{"gpu", "cpu"} {
			b.Run(kernels+"/"+s.name, func(b *testing.B) {
				op := convBenchOp(b, s.n, s.c, s.h, s.w, s.o, s.k, s.stride)
				flops := 2 * float64(s.n*s.o*op.ho*op.wo) * float64(s.c*s.k*s.k)
				benchProgramWith(b, flops, Options{Kernels: kernels}, func(bl *Builder) {
					x := bl.Input("x", s.n, s.c, s.h, s.w)
					w := bl.Input("w", s.o, s.c, s.k, s.k)
					bl.Output("y", bl.Conv2d(x, w, bl.Input("bias", s.o), Pad(s.stride, s.k/2)))
				})
			})
			if !convHalfBench(s.name) {
				continue
			}
			// A model's convolution: the filter a weight stored as fp16
			// (f16w), and also the activations (f16).
			for _, v := range []struct{ name, act string }{{"f16w_", ActivationsF32}, {"f16_", ActivationsF16}} {
				b.Run(kernels+"/"+v.name+s.name, func(b *testing.B) {
					op := convBenchOp(b, s.n, s.c, s.h, s.w, s.o, s.k, s.stride)
					flops := 2 * float64(s.n*s.o*op.ho*op.wo) * float64(s.c*s.k*s.k)
					benchProgramWith(b, flops, Options{Kernels: kernels, Weights: WeightsF16, Activations: v.act}, func(bl *Builder) {
						x := bl.Input("x", s.n, s.c, s.h, s.w)
						w := bl.Weight("w", s.o, s.c, s.k, s.k)
						bl.Output("y", bl.Conv2d(x, w, bl.Input("bias", s.o), Pad(s.stride, s.k/2)))
					})
				})
			}
		}
	}
}

// BenchmarkConv2dBwdInput times conv2d's input gradient alone on the same
// problems, counting the forward's flops.
func BenchmarkConv2dBwdInput(b *testing.B) {
	for _, s := range convBenchShapes {
		for _, kernels := range []string{"gpu", "cpu"} {
			b.Run(kernels+"/"+s.name, func(b *testing.B) {
				op := convBenchOp(b, s.n, s.c, s.h, s.w, s.o, s.k, s.stride)
				flops := 2 * float64(s.n*s.o*op.ho*op.wo) * float64(s.c*s.k*s.k)
				benchProgramWith(b, flops, Options{Kernels: kernels}, func(bl *Builder) {
					dy := bl.Input("dy", op.n, op.o, op.ho, op.wo)
					w := bl.Input("w", op.o, op.c, op.kh, op.kw)
					bl.Output("dx", bl.conv2dBackwardInput(dy, w, op))
				})
			})
			if !convHalfBench(s.name) {
				continue
			}
			// The filter a weight stored as fp16 (a backward op's
			// activations stay fp32).
			b.Run(kernels+"/f16w_"+s.name, func(b *testing.B) {
				op := convBenchOp(b, s.n, s.c, s.h, s.w, s.o, s.k, s.stride)
				flops := 2 * float64(s.n*s.o*op.ho*op.wo) * float64(s.c*s.k*s.k)
				benchProgramWith(b, flops, Options{Kernels: kernels, Weights: WeightsF16}, func(bl *Builder) {
					dy := bl.Input("dy", op.n, op.o, op.ho, op.wo)
					w := bl.Weight("w", op.o, op.c, op.kh, op.kw)
					bl.Output("dx", bl.conv2dBackwardInput(dy, w, op))
				})
			})
		}
	}
}

// convBenchOp is the op Builder.Conv2d makes for a square kernel k with
// "same" padding, for its output size.
func convBenchOp(b *testing.B, n, c, h, w, o, k, stride int) conv2dOp {
	b.Helper()
	bl := NewBuilder()
	y := bl.Conv2d(bl.Input("x", n, c, h, w), bl.Input("w", o, c, k, k), nil, Pad(stride, k/2))
	if err := bl.Err(); err != nil {
		b.Fatal(err)
	}
	return y.node.Op.(conv2dOp)
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

// BenchmarkGroupNorm times groupnorm alone (wall and kernel ms per run)
// for both kernel families and both activation precisions: the tiny UNet's
// (16 small groups, where the fixed cost per workgroup and dispatch
// dominates; lavapipe's barriers made it over 1 ms) and the SD VAE's (32
// groups of 65536 elements at 512x512, and of 131072 in a 256-channel
// block at a quarter of full resolution).
func BenchmarkGroupNorm(b *testing.B) {
	for _, s := range []struct {
		name   string
		shape  []int
		groups int
		silu   bool
	}{
		{"unet_tiny_2x32x16x16", []int{2, 32, 16, 16}, 8, true},
		{"unet_tiny_2x64x4x4", []int{2, 64, 4, 4}, 8, false},
		{"vae_1x512x64x64", []int{1, 512, 64, 64}, 32, true},
		{"vae_1x256x128x128", []int{1, 256, 128, 128}, 32, true},
	} {
		for _, kernels := range []string{"gpu", "cpu"} {
			for _, act := range []string{ActivationsF32, ActivationsF16} {
				b.Run(kernels+"/"+act+"/"+s.name, func(b *testing.B) {
					_, _, el, gpu := runBench(b, Options{Kernels: kernels, Activations: act}, func(bl *Builder) {
						c := s.shape[1]
						bl.Output("y", bl.GroupNorm(bl.Input("x", s.shape...), bl.Input("g", c), bl.Input("b", c), s.groups, 1e-5, s.silu))
					})
					b.ReportMetric(float64(el.Microseconds())/1000/float64(b.N), "ms/run")
					if gpu > 0 {
						b.ReportMetric(float64(gpu.Microseconds())/1000, "kernel-ms")
					}
				})
			}
		}
	}
}
