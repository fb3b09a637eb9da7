package ref

import (
	"math"
	"testing"
)

func TestActivations(t *testing.T) {
	x := []float32{0, 1, -2, 3.5}
	cases := []struct {
		name string
		f    func([]float32) []float32
		want []float64
	}{
		{"SiLU", SiLU, []float64{0, 0.7310585786300049, -2 / (1 + math.Exp(2)), 3.5 / (1 + math.Exp(-3.5))}},
		// Φ(1) = 0.8413447460685429; -2·Φ(-2) = -0.04550026389635842.
		{"GELU", GELU, []float64{0, 0.8413447460685429, -0.04550026389635842, 3.5 * 0.5 * (1 + math.Erf(3.5/math.Sqrt2))}},
		{"GELUTanh", GELUTanh, []float64{0, 0.8411919906082768,
			-1 * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(-2-0.044715*8))),
			1.75 * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(3.5+0.044715*42.875)))}},
		{"QuickGELU", QuickGELU, []float64{0, 0.8457957659328212, -2 / (1 + math.Exp(3.404)), 3.5 / (1 + math.Exp(-5.957))}},
		{"LeakyReLU", func(x []float32) []float32 { return LeakyReLU(x, 0.01) }, []float64{0, 1, -0.02, 3.5}},
	}
	for _, c := range cases {
		got := c.f(x)
		for i := range x {
			if d := math.Abs(float64(got[i]) - c.want[i]); d > 1e-7*max(1, math.Abs(c.want[i])) {
				t.Errorf("%s(%v) = %v, want %v", c.name, x[i], got[i], c.want[i])
			}
		}
	}
	// The tanh form is an approximation of the exact one, not the same
	// function: guard against the two being swapped.
	if a, b := GELU([]float32{-1})[0], GELUTanh([]float32{-1})[0]; a == b || math.Abs(float64(a-b)) > 1e-3 {
		t.Errorf("GELU(-1)=%v vs GELUTanh(-1)=%v: expected close but different", a, b)
	}
}

func TestGEGLU(t *testing.T) {
	// Hand case: hidden first, gate second (diffusers' chunk order).
	assertClose(t, "hand", GEGLU([]float32{2, 3, 1, 0}, 1, 2), []float64{2 * 0.8413447460685429, 0}, 1e-7)
	r := newRand(8)
	for _, s := range []struct{ rows, f int }{{1, 1}, {3, 5}, {7, 4}} {
		x := randn(r, s.rows*2*s.f, 1.5)
		// chunk(2, dim=-1) with Permute: [rows,2,f] -> [2,rows,f].
		halves := Permute(x, []int{s.rows, 2, s.f}, []int{1, 0, 2})
		n := s.rows * s.f
		want, _ := Mul(halves[:n], []int{n}, GELU(halves[n:]), []int{n})
		assertClose(t, "chunk+gelu", GEGLU(x, s.rows, s.f), want, 1e-7)
	}
	if GEGLU(make([]float32, 5), 1, 2) != nil {
		t.Error("odd width accepted")
	}
}

func TestUnaryBackwardRejects(t *testing.T) {
	x, dy := []float32{1, 2}, []float32{1}
	for name, f := range map[string]func(x, dy []float32) []float32{
		"SiLU": SiLUBackward, "GELU": GELUBackward, "GELUTanh": GELUTanhBackward, "QuickGELU": QuickGELUBackward,
		"LeakyReLU": func(x, dy []float32) []float32 { return LeakyReLUBackward(x, dy, 0.1) },
	} {
		if f(x, dy) != nil {
			t.Errorf("%s: length mismatch accepted", name)
		}
	}
}
