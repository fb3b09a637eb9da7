package graph

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// gradCase builds a forward graph from inputs and returns its output and
// the inputs to differentiate. The loss is sum(out * G) for a random G.
type gradCase struct {
	name  string
	build func(b *Builder) (out *Tensor, wrt []*Tensor)
	init  map[string]func(rng *rand.Rand, n int) []float32
}

func gradGraph(t *testing.T, c gradCase) (fwd, bwd *Graph, wrtNames []string) {
	t.Helper()
	b := NewBuilder()
	out, wrt := c.build(b)
	g := b.Input("G", out.Shape()...)
	loss := b.Sum(b.Reshape(b.Mul(out, g), out.Numel()), 0)
	b.Output("loss", loss)
	grads := b.Grad(loss, nil, wrt...)
	for i, gr := range grads {
		b.Output("grad_"+wrt[i].Name(), gr)
		wrtNames = append(wrtNames, wrt[i].Name())
	}
	bwd, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	fb := NewBuilder()
	fout, _ := c.build(fb)
	fg := fb.Input("G", fout.Shape()...)
	fb.Output("loss", fb.Sum(fb.Reshape(fb.Mul(fout, fg), fout.Numel()), 0))
	fwd, err = fb.Build()
	if err != nil {
		t.Fatal(err)
	}
	return fwd, bwd, wrtNames
}

func gradInputs(g *Graph, c gradCase, rng *rand.Rand) map[string][]float32 {
	in := map[string][]float32{}
	for _, x := range g.Inputs() {
		if f, ok := c.init[x.Name()]; ok {
			in[x.Name()] = f(rng, x.Numel())
		} else {
			in[x.Name()] = randVec(rng, x.Numel(), 1)
		}
	}
	return in
}

// checkFiniteDifferences compares the backward graph's gradients (CPU) with
// central differences of the forward loss at a few random coordinates.
func checkFiniteDifferences(t *testing.T, c gradCase) {
	fwd, bwd, names := gradGraph(t, c)
	rng := rand.New(rand.NewSource(42))
	in := gradInputs(bwd, c, rng)
	res, err := Interpret(bwd, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		r, err := Interpret(fwd, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		return float64(r["loss"][0])
	}
	for _, name := range names {
		g := res["grad_"+name]
		x := in[name]
		var num, den float64
		for trial := 0; trial < 6; trial++ {
			i := rng.Intn(len(x))
			orig := x[i]
			h := 1e-2 * math.Max(1, math.Abs(float64(orig)))
			x[i] = orig + float32(h)
			lp := loss()
			x[i] = orig - float32(h)
			lm := loss()
			x[i] = orig
			fd := (lp - lm) / (2 * h)
			num += (fd - float64(g[i])) * (fd - float64(g[i]))
			den += fd*fd + float64(g[i])*float64(g[i])
		}
		if den > 0 && math.Sqrt(num/den) > 5e-3 {
			t.Errorf("d/d%s: finite differences disagree (relative %.3g)", name, math.Sqrt(num/den))
		}
	}
}

// checkGradGPU runs the backward graph on the device against Interpret.
func checkGradGPU(t *testing.T, c gradCase) { checkGradKernels(t, c, "") }

// checkGradKernels is checkGradGPU with a kernel family forced ("gpu",
// "cpu"; "" is the device's choice).
func checkGradKernels(t *testing.T, c gradCase, kernels string) {
	checkGradWith(t, c, Options{Kernels: kernels}, 1e-4)
}

// checkGradWith compiles the gradient graph with opts and compares every
// output with Interpret to tol; with Activations f16 it requires that
// something is stored as float16 (else it would test fp32).
func checkGradWith(t *testing.T, c gradCase, opts Options, tol float64) {
	t.Helper()
	_, bwd, names := gradGraph(t, c)
	p, err := Compile(device(t), bwd, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if opts.Activations == ActivationsF16 && p.halfActivationCount() == 0 {
		t.Fatal("no tensor stored as float16: this would test fp32")
	}
	in := gradInputs(bwd, c, rand.New(rand.NewSource(7)))
	want, err := Interpret(bwd, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	runPoisoned(t, p, in)
	for _, name := range append([]string{"loss"}, prefixed("grad_", names)...) {
		got, err := p.Output(name)
		if err != nil {
			t.Fatal(err)
		}
		if e := RelErr(got, want[name]); !(e <= tol) {
			t.Errorf("%s: GPU vs CPU relative error %.3g > %.1g", name, e, tol)
		}
	}
}

func prefixed(p string, s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = p + x
	}
	return out
}

func positive(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 0.5 + r.Float32()
	}
	return v
}

func gradCases() []gradCase {
	in := func(b *Builder, name string, shape ...int) *Tensor { return b.Input(name, shape...) }
	cases := []gradCase{
		{name: "linear", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, w, bias := in(b, "x", 2, 3, 5), in(b, "w", 4, 5), in(b, "bias", 4)
			return b.Linear(x, w, bias), []*Tensor{x, w, bias}
		}},
		{name: "layernorm", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, g, be := in(b, "x", 3, 7), in(b, "g", 7), in(b, "be", 7)
			return b.LayerNorm(x, g, be, 1e-5), []*Tensor{x, g, be}
		}},
		{name: "groupnorm_silu", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, g, be := in(b, "x", 2, 4, 3, 3), in(b, "g", 4), in(b, "be", 4)
			return b.GroupNorm(x, g, be, 2, 1e-5, true), []*Tensor{x, g, be}
		}},
		{name: "groupnorm", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, g, be := in(b, "x", 1, 6, 5), in(b, "g", 6), in(b, "be", 6)
			return b.GroupNorm(x, g, be, 3, 1e-6, false), []*Tensor{x}
		}},
		{name: "geglu", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := in(b, "x", 3, 8)
			return b.GEGLU(x), []*Tensor{x}
		}},
		{name: "softmax", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := in(b, "x", 3, 6)
			return b.Softmax(x), []*Tensor{x}
		}},
		{name: "broadcast_mul_add_div", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, y, z := in(b, "x", 2, 3, 4), in(b, "y", 3, 1), in(b, "z", 4)
			return b.Div(b.Add(b.Mul(x, y), x), z), []*Tensor{x, y, z}
		}, init: map[string]func(*rand.Rand, int) []float32{"z": positive}},
		{name: "layout", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, y := in(b, "x", 1, 2, 3, 3), in(b, "y", 1, 3, 3, 3)
			h := b.Concat(x, y, 1)
			h = b.Upsample2x(b.Permute(h, 0, 1, 3, 2))
			return b.Slice(b.Mean(h, 2), 1, 1, 4), []*Tensor{x, y}
		}},
		{name: "pad_slice", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := in(b, "x", 2, 3, 4)
			return b.Pad(b.Slice(x, 1, 1, 3), 1, 2, 5), []*Tensor{x}
		}},
		{name: "l2norm_rownorm", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, h := in(b, "x", 3, 6), in(b, "h", 3, 6)
			return b.Add(h, b.Mul(b.RowNorm(h), b.L2Normalize(x, 0.7))), []*Tensor{x, h}
		}},
		{name: "sqrt_exp_rsqrt_scale", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := in(b, "x", 9)
			return b.Add(b.Sqrt(x), b.Scale(b.Mul(b.Exp(b.Scale(x, 0.5)), b.Rsqrt(x)), 0.3)), []*Tensor{x}
		}, init: map[string]func(*rand.Rand, int) []float32{"x": positive}},
		{name: "matmul_batched", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, y := in(b, "x", 2, 4, 3), in(b, "y", 2, 4, 5)
			return b.MatMul(x, y, true, false), []*Tensor{x, y}
		}},
		{name: "matmul_transB", build: func(b *Builder) (*Tensor, []*Tensor) {
			x, y := in(b, "x", 2, 3, 4), in(b, "y", 2, 5, 4)
			return b.MatMul(x, y, false, true), []*Tensor{x, y}
		}},
	}
	for _, a := range []Act{ActSiLU, ActGELU, ActGELUTanh, ActQuickGELU, ActLeakyReLU} {
		a := a
		cases = append(cases, gradCase{name: fmt.Sprint("act_", a), build: func(b *Builder) (*Tensor, []*Tensor) {
			x := in(b, "x", 17)
			return b.Apply(x, a, 0.1), []*Tensor{x}
		}})
	}
	return cases
}

func TestGradFiniteDifferences(t *testing.T) {
	for _, c := range gradCases() {
		t.Run(c.name, func(t *testing.T) { checkFiniteDifferences(t, c) })
	}
}

func TestGradGPU(t *testing.T) {
	for _, c := range gradCases() {
		t.Run(c.name, func(t *testing.T) { checkGradGPU(t, c) })
	}
}

func TestGradFrozenSkipsWeights(t *testing.T) {
	b := NewBuilder()
	x := b.Input("x", 2, 3)
	w := b.Weight("w", 4, 3)
	y := b.Linear(b.Linear(x, w, nil), b.Weight("w2", 2, 4), nil)
	before := len(b.nodes)
	g := b.Grad(b.Sum(b.Reshape(y, 4), 0), nil, x)
	if b.Err() != nil || g[0] == nil {
		t.Fatal(b.Err())
	}
	// Backward of two linears for dx alone: two matmuls plus the loss's
	// reduce; weight gradients would add more.
	if added := len(b.nodes) - before; added > 4 {
		t.Errorf("backward added %d nodes: weight gradients computed for frozen weights?", added)
	}
}

// State updated with Assign persists across runs on the device and in the
// interpreter: a counter and an accumulator.
func TestAssign(t *testing.T) {
	b := NewBuilder()
	acc := b.Input("acc", 5)
	x := b.Input("x", 5)
	next := b.Add(acc, b.Scale(x, 2))
	b.Assign(acc, next)
	b.Output("y", b.Mul(next, x))
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	in := map[string][]float32{"acc": make([]float32, 5), "x": {1, 2, 3, 4, 5}}
	for i := 0; i < 3; i++ {
		if _, err := Interpret(g, in, nil); err != nil {
			t.Fatal(err)
		}
	}
	if in["acc"][4] != 30 {
		t.Fatalf("interpreter acc = %v", in["acc"])
	}
	p, err := Compile(device(t), g, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetInput("acc", make([]float32, 5))
	p.SetInput("x", []float32{1, 2, 3, 4, 5})
	var y []float32
	for i := 0; i < 3; i++ {
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
	}
	if y, err = p.Output("y"); err != nil || y[4] != 150 {
		t.Fatalf("GPU y = %v, %v (want 30*5 at the end)", y, err)
	}
	b2 := NewBuilder()
	b2.Assign(b2.Input("a", 2), b2.Input("c", 3))
	if b2.Err() == nil {
		t.Fatal("shape mismatch accepted")
	}
}
