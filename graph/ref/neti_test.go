package ref

import (
	"math"
	"testing"
)

func TestTimestepEmbedding(t *testing.T) {
	// t = 0: every sin is 0 and every cos is 1, so the layout is visible.
	cases := []struct {
		name string
		dim  int
		flip bool
		want []float32
	}{
		{"sin first", 4, false, []float32{0, 0, 1, 1}},
		{"cos first", 4, true, []float32{1, 1, 0, 0}},
		{"odd dim pads", 5, true, []float32{1, 1, 0, 0, 0}},
		{"dim 1", 1, false, []float32{0}},
	}
	for _, c := range cases {
		assertExact(t, c.name, TimestepEmbedding([]float32{0}, c.dim, c.flip, 0, 1, 10000), c.want)
	}
	// freq_i = exp(-ln(10000)·i/(half-shift)): with half 2 and shift 1 the
	// second frequency is 1e-4 exactly (up to float32).
	got := TimestepEmbedding([]float32{1, 1000}, 4, false, 1, 1, 10000)
	want := []float64{
		math.Sin(1), math.Sin(1e-4), math.Cos(1), math.Cos(1e-4),
		math.Sin(1000), math.Sin(0.1), math.Cos(1000), math.Cos(0.1),
	}
	assertClose(t, "shift 1", got, want, 1e-6)
	// scale multiplies the argument.
	got = TimestepEmbedding([]float32{3}, 2, false, 0, 2, 10000)
	assertClose(t, "scale", got, []float64{math.Sin(6), math.Cos(6)}, 1e-6)
	if TimestepEmbedding([]float32{1}, -2, false, 0, 1, 10000) != nil {
		t.Error("negative dim accepted")
	}
}

func TestFourierFeatures(t *testing.T) {
	// numW = 1, w = (1, 0): z = t, row = [sin t, cos t] (already unit norm).
	assertClose(t, "one frequency", FourierFeatures([]float32{1, 0}, 1, []float32{0, 2}, []float32{5, 5}),
		[]float64{0, 1, math.Sin(2), math.Cos(2)}, 1e-7)
	// numW = 2: w rows (0.5, 0) and (0, 2); norm is √2.
	tv, lv := 3.0, 4.0
	got := FourierFeatures([]float32{0.5, 0, 0, 2}, 2, []float32{3}, []float32{4})
	s := 1 / math.Sqrt2
	assertClose(t, "two frequencies", got,
		[]float64{math.Sin(0.5*tv) * s, math.Sin(2*lv) * s, math.Cos(0.5*tv) * s, math.Cos(2*lv) * s}, 1e-7)
	if FourierFeatures([]float32{1, 0}, 1, []float32{1}, nil) != nil || FourierFeatures([]float32{1}, 1, nil, nil) != nil {
		t.Error("mismatched sizes accepted")
	}
}

func TestBypass(t *testing.T) {
	// ‖h‖ = 5, v/‖v‖ = (0,1): h' = h + 0.2·5·(0,1).
	assertClose(t, "hand", Bypass([]float32{3, 4}, []float32{0, 2}, 2, 0.2), []float64{3, 5}, 1e-7)
	// The length of v does not matter, only its direction.
	assertClose(t, "two rows", Bypass([]float32{3, 4, 0, 1}, []float32{0, 200, -1, 0}, 2, 0.5),
		[]float64{3, 6.5, -0.5, 1}, 1e-7)
	if Bypass([]float32{1, 2, 3}, []float32{1, 2, 3}, 2, 0.2) != nil || Bypass(nil, nil, 0, 0.2) != nil {
		t.Error("bad sizes accepted")
	}
}
