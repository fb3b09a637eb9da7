package graph

import (
	"math/rand"
	"testing"

	"github.com/neti-project/neti/vk"
)

func TestMatMul(t *testing.T) {
	type mm struct {
		batch, m, n, k int
		ta, tb, bcast  bool
	}
	var cases []opCase
	for _, s := range []mm{
		{1, 1, 1, 1, false, false, false},
		{1, 64, 64, 64, false, false, false},
		{3, 17, 33, 65, false, false, false},
		{2, 70, 5, 129, true, false, false},
		{2, 31, 67, 20, false, true, false},
		{4, 9, 77, 40, true, true, true},
		{2, 130, 66, 17, false, false, true},
		{2, 19, 300, 33, false, true, true}, // wide C: matmul_rows on CPU devices
		{1, 70, 257, 9, true, false, false},
		// N and K (and M where A is transposed) multiples of 4: matmul_sg
		// on CPU devices, with partial row and column tiles.
		{2, 37, 36, 20, false, false, false},
		{3, 20, 44, 12, true, false, false},
		{2, 33, 68, 16, false, true, true},
		{2, 36, 40, 24, true, true, false},
	} {
		s := s
		cases = append(cases, opCase{
			name: caseName("matmul", s.batch, s.m, s.n, s.k, s.ta, s.tb, s.bcast),
			build: func(b *Builder) {
				ash := []int{s.batch, s.m, s.k}
				if s.ta {
					ash = []int{s.batch, s.k, s.m}
				}
				bsh := []int{s.batch, s.k, s.n}
				if s.tb {
					bsh[1], bsh[2] = s.n, s.k
				}
				if s.bcast {
					bsh = bsh[1:]
				}
				b.Output("y", b.MatMul(b.Input("a", ash...), b.Input("b", bsh...), s.ta, s.tb))
			},
		})
	}
	for _, s := range []struct {
		rows, in, out int
		bias          bool
	}{{1, 1, 1, true}, {77, 32, 96, true}, {5, 300, 7, false}, {130, 64, 65, true}, {45, 40, 36, false}} {
		s := s
		cases = append(cases, opCase{
			name: caseName("linear", s.rows, s.in, s.out, s.bias),
			build: func(b *Builder) {
				x := b.Input("x", 1, s.rows, s.in)
				w := b.Input("w", s.out, s.in)
				var bias *Tensor
				if s.bias {
					bias = b.Input("bias", s.out)
				}
				b.Output("y", b.Linear(x, w, bias))
			},
		})
	}
	for _, kernels := range []string{"gpu", "cpu"} {
		for _, c := range cases {
			c.kernels = kernels
			t.Run(kernels+"/"+c.name, func(t *testing.T) { runOpCase(t, c) })
		}
	}
}

// TestLinearHalfMixed: a model's Linear layer with float16 activations
// and fp32 or fp16 weights, so that one dispatch binds float16 and float32
// buffers together (runOpCase's f16 checks make every binding float16;
// weights and biases are inputs there). Shapes reach matmul_sg,
// matmul_cols and matmul_rows in the cpu family, the tiled matmul in the
// gpu one.
func TestLinearHalfMixed(t *testing.T) {
	dev := device(t)
	if !dev.F16() {
		t.Skipf("%s has no 16-bit storage", dev.Info().Name)
	}
	both := []string{WeightsF32, WeightsF16}
	for _, s := range []struct {
		rows, in, out int
		weights       []string
	}{
		// matmul_sg with fp16 weights only: with a cold shader cache
		// lavapipe takes over 10 s to build each of its pipelines.
		{37, 68, 44, []string{WeightsF16}},
		{37, 70, 29, both},  // matmul_cols
		{19, 33, 300, both}, // matmul_rows
	} {
		for _, weights := range s.weights {
			for _, kernels := range []string{"gpu", "cpu"} {
				t.Run(caseName(s.rows, s.in, s.out, "w"+weights, kernels), func(t *testing.T) {
					b := NewBuilder()
					b.Output("y", b.Linear(b.Input("x", 2, s.rows, s.in), b.Weight("w", s.out, s.in), b.Weight("bias", s.out)))
					g, err := b.Build()
					if err != nil {
						t.Fatal(err)
					}
					rng := rand.New(rand.NewSource(int64(s.out)))
					w := map[string][]float32{}
					src := func(name string, shape []int) ([]float32, error) {
						if _, ok := w[name]; !ok {
							w[name] = randVec(rng, numel(shape), 1)
						}
						return w[name], nil
					}
					p, err := Compile(dev, g, src, Options{Kernels: kernels, Weights: weights, Activations: ActivationsF16})
					if err != nil {
						t.Fatal(err)
					}
					defer p.Close()
					// x and y half; the bias always fp32 (halfWeights), w as asked.
					wantHalfW := 0
					if weights == WeightsF16 {
						wantHalfW = 1
					}
					if p.halfActivationCount() != 2 || p.halfCount() != wantHalfW {
						t.Fatalf("%d activations and %d weights stored as float16, want 2 and %d", p.halfActivationCount(), p.halfCount(), wantHalfW)
					}
					in := map[string][]float32{"x": randVec(rng, 2*s.rows*s.in, 1)}
					want, err := Interpret(g, in, src)
					if err != nil {
						t.Fatal(err)
					}
					runPoisoned(t, p, in)
					got, err := p.Output("y")
					if err != nil {
						t.Fatal(err)
					}
					if e := RelErr(got, want["y"]); !(e <= 1e-2) {
						t.Errorf("relative error %.3g > 1e-2", e)
					}
				})
			}
		}
	}
}

func TestMatMulShapeErrors(t *testing.T) {
	b := NewBuilder()
	b.MatMul(b.Input("a", 2, 3, 4), b.Input("b", 2, 5, 6), false, false)
	if b.Err() == nil {
		t.Fatal("inner dimension mismatch gave no error")
	}
	b = NewBuilder()
	b.Linear(b.Input("x", 3, 4), b.Input("w", 5, 6), nil)
	if _, err := b.Build(); err == nil {
		t.Fatal("linear mismatch gave no build error")
	}
}

// TestMatMulSGFor checks when the CPU kernels use matmul_sg.comp: its loads
// and stores are vec4, so N and K (and M where A is transposed) must be
// multiples of 4, C at least half a workgroup wide, and the device needs
// subgroup broadcasts and a subgroup narrow enough for 64-row blocks.
func TestMatMulSGFor(t *testing.T) {
	lavapipe := vk.DeviceInfo{SubgroupSize: 8, SubgroupOps: []string{"basic", "vote", "ballot"}}
	for _, c := range []struct {
		name string
		info vk.DeviceInfo
		op   matmulOp
		ok   bool
	}{
		{"square", lavapipe, matmulOp{batch: 1, m: 1024, n: 1024, k: 1024}, true},
		{"odd_m", lavapipe, matmulOp{batch: 2, m: 77, n: 768, k: 768, transB: true}, true},
		{"odd_m_trans_a", lavapipe, matmulOp{batch: 1, m: 77, n: 768, k: 768, transA: true}, false},
		{"m4_trans_a", lavapipe, matmulOp{batch: 1, m: 76, n: 768, k: 768, transA: true}, true},
		{"odd_n", lavapipe, matmulOp{batch: 1, m: 64, n: 66, k: 64}, false},
		{"odd_k", lavapipe, matmulOp{batch: 1, m: 64, n: 64, k: 65}, false},
		{"narrow", lavapipe, matmulOp{batch: 1, m: 4096, n: 28, k: 64}, false},
		{"no_ballot", vk.DeviceInfo{SubgroupSize: 8, SubgroupOps: []string{"basic"}}, matmulOp{batch: 1, m: 64, n: 64, k: 64}, false},
		{"subgroup_32", vk.DeviceInfo{SubgroupSize: 32, SubgroupOps: []string{"ballot"}}, matmulOp{batch: 1, m: 64, n: 256, k: 64}, false},
	} {
		sg, rm, ok := matmulSGFor(c.info, c.op)
		if ok != c.ok || ok && (sg != c.info.SubgroupSize || rm%(4*sg) != 0) {
			t.Errorf("%s: matmulSGFor = %d, %d, %v; want ok %v", c.name, sg, rm, ok, c.ok)
		}
	}
}
