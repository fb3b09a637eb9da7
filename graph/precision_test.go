package graph

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// The float16 conversion is checked exhaustively in one direction (every
// half value converts to float32 and back unchanged) and against exact
// rounding on random floats in the other.
func TestF16Conversion(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		v := f16Value(uint16(h))
		if v != v { // NaN: any NaN is fine, as long as it stays NaN
			if g := f16Value(f16Bits(v)); g == g {
				t.Fatalf("NaN %#04x came back as %v", h, g)
			}
			continue
		}
		if g := f16Bits(v); g != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, v, g)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		x := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-26)))
		got := float64(f16Value(f16Bits(x)))
		// The nearest half: no half value lies strictly closer.
		err := math.Abs(got - float64(x))
		h := f16Bits(x)
		for _, nb := range []uint16{h - 1, h + 1} {
			if v := float64(f16Value(nb)); !math.IsInf(v, 0) && v == v && math.Abs(v-float64(x)) < err {
				t.Fatalf("%v rounded to %v, but %v is closer", x, got, v)
			}
		}
	}
	for _, c := range []struct {
		in   float32
		want uint16
	}{{65504, 0x7bff}, {65520, 0x7c00}, {1e9, 0x7c00}, {-1e9, 0xfc00}, {5.960464477539063e-08, 0x0001}, {2.9e-08, 0x0000}, {3.0e-08, 0x0001}, {1, 0x3c00}, {-2, 0xc000}} {
		if g := f16Bits(c.in); g != c.want {
			t.Errorf("f16Bits(%v) = %#04x, want %#04x", c.in, g, c.want)
		}
	}
}

// TestWeightsF16 runs every op with an fp16-weight variant on weights stored
// as float16, in both kernel families. Against the fp32 reference the error
// is the fp16 budget (1e-2); against the reference on weights rounded to
// float16 it is fp32's (1e-5), which shows that the kernels read the halves
// exactly and accumulate in fp32.
func TestWeightsF16(t *testing.T) {
	dev := device(t)
	if !dev.F16() {
		t.Skipf("%s has no 16-bit storage", dev.Info().Name)
	}
	cases := []struct {
		name  string
		build func(b *Builder)
	}{
		{"linear_37x70x29", func(b *Builder) {
			x := b.Input("x", 2, 37, 70)
			b.Output("y", b.Linear(x, b.Weight("w", 29, 70), b.Weight("bias", 29)))
		}},
		{"matmul_shared_b_9x33x130", func(b *Builder) {
			b.Output("y", b.MatMul(b.Input("x", 3, 9, 33), b.Weight("w", 33, 130), false, false))
		}},
		// N and K multiples of 4: matmul_sg_f16 on CPU devices.
		{"linear_vec4_37x68x44", func(b *Builder) {
			x := b.Input("x", 2, 37, 68)
			b.Output("y", b.Linear(x, b.Weight("w", 44, 68), b.Weight("bias", 44)))
		}},
		{"matmul_vec4_shared_b_9x36x132", func(b *Builder) {
			b.Output("y", b.MatMul(b.Input("x", 3, 9, 36), b.Weight("w", 36, 132), false, false))
		}},
		{"conv3x3_2x5x9x11_to_7", func(b *Builder) {
			x := b.Input("x", 2, 5, 9, 11)
			b.Output("y", b.Conv2d(x, b.Weight("w", 7, 5, 3, 3), b.Weight("bias", 7), Pad(1, 1)))
		}},
		{"conv1x1_s2_1x6x8x8_to_20", func(b *Builder) {
			b.Output("y", b.Conv2d(b.Input("x", 1, 6, 8, 8), b.Weight("w", 20, 6, 1, 1), nil, Pad(2, 0)))
		}},
		{"conv_bwd_input_3x3", func(b *Builder) {
			w := b.Weight("w", 7, 5, 3, 3)
			fwd := conv2dOp{n: 2, c: 5, h: 9, w: 11, o: 7, kh: 3, kw: 3, ho: 9, wo: 11, p: Pad(1, 1)}
			b.Output("dx", b.conv2dBackwardInput(b.Input("dy", 2, 7, 9, 11), w, fwd))
		}},
		{"embedding_50x24", func(b *Builder) {
			b.Output("y", b.Embedding(b.Weight("table", 50, 24), b.Const([]float32{0, 7, 49, 3, 7}, 5)))
		}},
	}
	for _, c := range cases {
		for _, kernels := range []string{"gpu", "cpu"} {
			t.Run(c.name+"/"+kernels, func(t *testing.T) {
				b := NewBuilder()
				c.build(b)
				g, err := b.Build()
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(uint64(len(c.name)), 3))
				w := map[string][]float32{}
				src := func(name string, shape []int) ([]float32, error) {
					if _, ok := w[name]; !ok {
						w[name] = make([]float32, numel(shape))
						for i := range w[name] {
							w[name][i] = float32(rng.NormFloat64())
						}
					}
					return w[name], nil
				}
				rounded := func(name string, shape []int) ([]float32, error) {
					v, _ := src(name, shape)
					v = append([]float32(nil), v...)
					if name != "bias" { // biases stay fp32
						roundF16(v)
					}
					return v, nil
				}
				p, err := Compile(dev, g, src, Options{Kernels: kernels, Weights: WeightsF16})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				f32, err := Plan(g, LimitsOf(dev.Info()), Options{})
				if err != nil {
					t.Fatal(err)
				}
				if p.halfCount() != 1 || p.Stats().WeightBytes >= f32.WeightBytes {
					t.Fatalf("%d weights stored as float16, weight bytes %d (fp32: %d)", p.halfCount(), p.Stats().WeightBytes, f32.WeightBytes)
				}
				inputs := map[string][]float32{}
				for _, in := range g.Inputs() {
					inputs[in.Name()] = make([]float32, in.Numel())
					for i := range inputs[in.Name()] {
						inputs[in.Name()][i] = float32(rng.NormFloat64())
					}
				}
				exact, err := Interpret(g, inputs, src)
				if err != nil {
					t.Fatal(err)
				}
				near, err := Interpret(g, inputs, rounded)
				if err != nil {
					t.Fatal(err)
				}
				runPoisoned(t, p, inputs)
				for name, want := range exact {
					got, err := p.Output(name)
					if err != nil {
						t.Fatal(err)
					}
					if e := RelErr(got, want); !(e <= 1e-2) || e == 0 {
						t.Errorf("%s: relative error %.3g against fp32 weights, want (0, 1e-2]", name, e)
					}
					if e := RelErr(got, near[name]); !(e <= 1e-5) {
						t.Errorf("%s: relative error %.3g against fp16-rounded weights > 1e-5", name, e)
					}
				}
			})
		}
	}
}

// A weight that some op reads through an operand without an fp16 variant
// stays fp32, and so does everything when the limits say no 16-bit storage.
func TestHalfWeightChoice(t *testing.T) {
	b := NewBuilder()
	x := b.Input("x", 8, 8)
	w1 := b.Weight("w1", 16, 8) // linear only: half
	w2 := b.Weight("w2", 8, 8)  // also added to an activation: fp32
	y := b.Linear(x, w1, nil)
	z := b.Add(b.Linear(x, w2, nil), w2)
	b.Output("y", y)
	b.Output("z", z)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	half := halfWeights(g)
	if !half[w1.ID()] || half[w2.ID()] || len(half) != 1 {
		t.Errorf("half weights %v, want only w1 (%d)", half, w1.ID())
	}
	on, err := Plan(g, Limits{F16: true}, Options{Weights: WeightsF16})
	if err != nil {
		t.Fatal(err)
	}
	off, err := Plan(g, Limits{F16: false}, Options{Weights: WeightsF16})
	if err != nil {
		t.Fatal(err)
	}
	if on.WeightBytes >= off.WeightBytes {
		t.Errorf("weight bytes with fp16 %d, without %d", on.WeightBytes, off.WeightBytes)
	}
	if _, err := Plan(g, Limits{}, Options{Weights: "bf16"}); err == nil {
		t.Error("unknown precision accepted")
	}
}

// chunks covers [0, n) exactly once, split or not.
func TestChunks(t *testing.T) {
	for _, n := range []int{0, 1, 1 << 18, 5<<18 + 3} {
		seen := make([]int32, n)
		var mu sync.Mutex
		chunks(n, func(lo, hi int) {
			mu.Lock()
			defer mu.Unlock()
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n %d: index %d done %d times", n, i, c)
			}
		}
	}
}

// TestHalfStorageOps: every op a Stable Diffusion forward pass uses can
// store its tensors as float16 (so runOpCase's f16 checks run for all of
// them); the mapper's ops and the backward kernels stay fp32 on purpose.
func TestHalfStorageOps(t *testing.T) {
	forward := []Op{activationOp{}, binaryOp{}, matmulOp{}, conv2dOp{}, groupNormOp{}, layerNormOp{},
		attentionOp{}, softmaxOp{}, gegluOp{}, concatOp{}, sliceOp{}, upsampleOp{}, permuteOp{},
		embeddingOp{}, timestepOp{}, reduceOp{}, padOp{}}
	for _, op := range forward {
		if _, ok := op.(halfStorage); !ok {
			t.Errorf("%s cannot store its tensors as float16", op.Name())
		}
	}
	fp32 := []Op{fourierOp{}, l2normOp{}, rowNormOp{}, conv2dBwdInputOp{}, attnBwdStatsOp{}, attnBwdQOp{}, attnBwdKVOp{}}
	for _, op := range fp32 {
		if _, ok := op.(halfStorage); ok {
			t.Errorf("%s claims float16 storage; its test list says fp32", op.Name())
		}
	}
}

// TestHalfActivationPlan: which tensors a graph stores as float16, and
// that the plan shrinks by them.
func TestHalfActivationPlan(t *testing.T) {
	b := NewBuilder()
	x := b.Input("x", 64, 64)
	y := b.SiLU(x)                                                        // half: written and read by half-capable kernels
	z := b.Add(y, b.Weight("bias", 64))                                   // the bias is a weight: stays fp32 (halfWeights' rule)
	f := b.Fourier(b.Input("t", 4), b.Input("l", 4), b.Weight("w", 3, 2)) // fourier keeps fp32
	b.Output("z", z)
	b.Output("f", f)
	state := b.Input("state", 64, 64)
	b.Assign(state, b.Add(state, z)) // assigned tensors keep fp32
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	half := halfActivations(g)
	want := map[*Tensor]bool{x: true, y: true, z: true, f: false, state: false}
	for tn, w := range want {
		if half[tn.root().id] != w {
			t.Errorf("%s: half %v, want %v", tn.describe(), half[tn.root().id], w)
		}
	}
	f32, err := Plan(g, Limits{F16: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f16, err := Plan(g, Limits{F16: true}, Options{Activations: ActivationsF16})
	if err != nil {
		t.Fatal(err)
	}
	if f16.IOBytes >= f32.IOBytes {
		t.Errorf("fp16 I/O %d bytes, fp32 %d", f16.IOBytes, f32.IOBytes)
	}
	off, err := Plan(g, Limits{F16: false}, Options{Activations: ActivationsF16})
	if err != nil {
		t.Fatal(err)
	}
	if off != f32 {
		t.Errorf("without 16-bit storage the plan is %+v, want the fp32 plan %+v", off, f32)
	}
	if _, err := Plan(g, Limits{}, Options{Activations: "bf16"}); err == nil {
		t.Error("unknown activation precision gave no error")
	}
}
