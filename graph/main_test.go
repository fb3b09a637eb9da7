package graph

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/testdev"
	"github.com/neti-project/neti/vk"
)

func TestMain(m *testing.M) { testdev.Main(m) }

// device returns the shared validating device (skipping without one).
func device(t testing.TB) *vk.Device { return testdev.Device(t) }

func randVec(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64()) * scale
	}
	return v
}

// opCase is one row of the op tables: build declares inputs (all random
// normal unless init says otherwise) and marks outputs.
type opCase struct {
	name  string
	build func(b *Builder)
	init  map[string]func(rng *rand.Rand, n int) []float32
	tol   float64
	// kernels forces a kernel family ("gpu", "cpu"); "" is the device's choice.
	kernels string
}

// runOpCase checks the GPU against Interpret on fresh random inputs, with
// poisoned buffers, twice (the second run replays the recording with new
// inputs). Where the device has 16-bit storage and the ops can store
// tensors as float16, it checks that too, to 1e-2 (ops without that
// ability are listed in TestHalfStorageOps).
func runOpCase(t *testing.T, c opCase) {
	t.Helper()
	dev := device(t)
	b := NewBuilder()
	c.build(b)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	tol := c.tol
	if tol == 0 {
		tol = 1e-5
	}
	checkOpCase(t, c, g, Options{Kernels: c.kernels}, tol)
	if !dev.F16() {
		return
	}
	t.Run("f16", func(t *testing.T) {
		checkOpCase(t, c, g, Options{Kernels: c.kernels, Activations: ActivationsF16}, max(tol, 1e-2))
	})
}

func checkOpCase(t *testing.T, c opCase, g *Graph, opts Options, tol float64) {
	t.Helper()
	p, err := Compile(device(t), g, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if opts.Activations == ActivationsF16 && p.halfActivationCount() == 0 {
		t.Skip("no tensor of this graph can be stored as float16")
	}
	rng := rand.New(rand.NewSource(int64(len(c.name)) * 7919))
	for run := 0; run < 2; run++ {
		inputs := map[string][]float32{}
		for _, in := range g.Inputs() {
			if f, ok := c.init[in.Name()]; ok {
				inputs[in.Name()] = f(rng, in.Numel())
			} else {
				inputs[in.Name()] = randVec(rng, in.Numel(), 1)
			}
		}
		want, err := Interpret(g, inputs, nil)
		if err != nil {
			t.Fatal(err)
		}
		runPoisoned(t, p, inputs)
		for name, w := range want {
			got, err := p.Output(name)
			if err != nil {
				t.Fatal(err)
			}
			if e := RelErr(got, w); !(e <= tol) {
				t.Errorf("run %d output %s: relative error %.3g > %.1g", run, name, e, tol)
			}
		}
	}
}

// runPoisoned poisons p's memory (so outputs a kernel leaves unwritten
// show), sets the inputs and runs it.
func runPoisoned(t testing.TB, p *Program, in map[string][]float32) {
	t.Helper()
	if err := p.Poison(); err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		if err := p.SetInput(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
}

func caseName(parts ...any) string {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, "_")
}
