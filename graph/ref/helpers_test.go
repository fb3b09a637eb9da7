package ref

import (
	"math"
	"math/rand/v2"
	"testing"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6e657469)) }

// randn draws n float32 normals scaled by s.
func randn(r *rand.Rand, n int, s float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * s)
	}
	return x
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// relErr is ‖got-want‖/‖want‖, or the absolute error when want is zero.
func relErr[A, B float](got []A, want []B) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func assertClose[A, B float](t *testing.T, what string, got []A, want []B, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil", what)
	}
	if e := relErr(got, want); !(e <= tol) {
		t.Errorf("%s: relative error %.3g > %.3g (len %d vs %d)", what, e, tol, len(got), len(want))
	}
}

func assertExact(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) || (got == nil) != (want == nil) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: [%d] = %v, want %v (got %v)", what, i, got[i], want[i], got)
		}
	}
}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// fdGrad estimates d loss / d x by central differences, perturbing x in
// place (and restoring it).
func fdGrad(x []float64, loss func() float64) []float64 {
	g := make([]float64, len(x))
	for i, v := range x {
		h := 1e-5 * max(1, math.Abs(v))
		x[i] = v + h
		lp := loss()
		x[i] = v - h
		lm := loss()
		x[i] = v
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

// gradTol bounds the relative error between a float32 analytic gradient
// and float64 central differences (the brief allows 1e-3; float32 rounding
// of the result alone is ~1e-7).
const gradTol = 1e-4

func checkGrad(t *testing.T, what string, got []float32, x []float64, loss func() float64) {
	t.Helper()
	want := fdGrad(x, loss)
	if got == nil {
		t.Fatalf("%s: analytic gradient is nil", what)
	}
	assertClose(t, what, got, want, gradTol)
	var n float64
	for _, v := range want {
		n += v * v
	}
	if n == 0 {
		t.Errorf("%s: finite-difference gradient is all zero; the check is vacuous", what)
	}
}
