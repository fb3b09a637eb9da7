package graph

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/neti-project/neti/vk"
)

// testDev is one validating device shared by the package's tests (nil when
// the machine has no Vulkan and REQUIRE_VULKAN is not set).
var testDev *vk.Device

func TestMain(m *testing.M) {
	d, err := vk.NewDevice(vk.Options{Validation: true})
	if err != nil {
		if os.Getenv("REQUIRE_VULKAN") == "1" {
			fmt.Fprintln(os.Stderr, "REQUIRE_VULKAN=1 but:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "graph tests: no Vulkan device, GPU tests skip:", err)
	}
	testDev = d
	code := m.Run()
	if d != nil {
		if err := d.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "device close:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// device returns the shared device and fails the test on any validation
// message the test produced.
func device(t testing.TB) *vk.Device {
	t.Helper()
	if testDev == nil {
		t.Skip("no Vulkan device")
	}
	testDev.ClearMessages()
	t.Cleanup(func() {
		for _, m := range testDev.Messages() {
			t.Errorf("validation: %v", m)
		}
	})
	return testDev
}

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
}

// runOpCase checks the GPU against Interpret on fresh random inputs, with
// poisoned buffers, twice (the second run replays the recording with new
// inputs).
func runOpCase(t *testing.T, c opCase) {
	t.Helper()
	dev := device(t)
	b := NewBuilder()
	c.build(b)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(dev, g, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tol := c.tol
	if tol == 0 {
		tol = 1e-5
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
		if err := p.Poison(); err != nil {
			t.Fatal(err)
		}
		for k, v := range inputs {
			if err := p.SetInput(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
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

func caseName(parts ...any) string {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, "_")
}
