package ref

import (
	"fmt"
	"math"
	"testing"
)

func TestGroupNormHand(t *testing.T) {
	// One group of [1 2 3 4]: mean 2.5, biased var 1.25.
	x := []float32{1, 2, 3, 4}
	s := 1 / math.Sqrt(1.25)
	want := []float64{-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s}
	assertClose(t, "no affine", GroupNorm(x, 1, 2, 2, 1, nil, nil, 0, false), want, 1e-7)
	// Affine per channel: channel 0 = {1,2}, channel 1 = {3,4}.
	aff := []float64{2*want[0] + 1, 2*want[1] + 1, -want[2], -want[3]}
	assertClose(t, "affine", GroupNorm(x, 1, 2, 2, 1, []float32{2, -1}, []float32{1, 0}, 0, false), aff, 1e-7)
	silu := make([]float64, 4)
	for i, v := range aff {
		silu[i] = v / (1 + math.Exp(-v))
	}
	assertClose(t, "affine+silu", GroupNorm(x, 1, 2, 2, 1, []float32{2, -1}, []float32{1, 0}, 0, true), silu, 1e-7)
}

// TestGroupNormPerChannel: with groups == c every channel is normalised on
// its own, i.e. InstanceNorm, written out directly here.
func TestGroupNormPerChannel(t *testing.T) {
	r := newRand(6)
	for _, s := range []struct{ n, c, hw int }{{1, 1, 1}, {2, 3, 5}, {1, 4, 9}, {3, 2, 7}} {
		x := randn(r, s.n*s.c*s.hw, 2)
		gamma, beta := randn(r, s.c, 1), randn(r, s.c, 1)
		const eps = 1e-5
		want := make([]float64, len(x))
		for b := 0; b < s.n; b++ {
			for ch := 0; ch < s.c; ch++ {
				plane := x[(b*s.c+ch)*s.hw:][:s.hw]
				var m, v float64
				for _, xv := range plane {
					m += float64(xv)
				}
				m /= float64(s.hw)
				for _, xv := range plane {
					v += (float64(xv) - m) * (float64(xv) - m)
				}
				v /= float64(s.hw)
				for i, xv := range plane {
					want[(b*s.c+ch)*s.hw+i] = (float64(xv)-m)/math.Sqrt(v+eps)*float64(gamma[ch]) + float64(beta[ch])
				}
			}
		}
		assertClose(t, fmt.Sprint(s), GroupNorm(x, s.n, s.c, s.hw, s.c, gamma, beta, eps, false), want, 1e-6)
	}
}

// TestGroupNormIsLayerNorm: a group is a contiguous block, so GroupNorm
// without affine equals LayerNorm over rows of (c/groups)·hw values.
func TestGroupNormIsLayerNorm(t *testing.T) {
	r := newRand(7)
	for _, s := range []struct{ n, c, hw, groups int }{{1, 4, 3, 2}, {2, 6, 5, 3}, {1, 8, 1, 8}, {2, 3, 4, 1}} {
		x := randn(r, s.n*s.c*s.hw, 1)
		want := LayerNorm(x, s.n*s.groups, s.c/s.groups*s.hw, nil, nil, 1e-6)
		assertClose(t, fmt.Sprint(s), GroupNorm(x, s.n, s.c, s.hw, s.groups, nil, nil, 1e-6, false), want, 1e-6)
	}
}

func TestGroupNormRejects(t *testing.T) {
	x := make([]float32, 12)
	cases := []struct {
		name        string
		c, groups   int
		gamma, beta []float32
	}{
		{"groups do not divide c", 4, 3, nil, nil},
		{"zero groups", 4, 0, nil, nil},
		{"short gamma", 4, 2, make([]float32, 3), nil},
		{"short beta", 4, 2, nil, make([]float32, 5)},
		{"size mismatch", 5, 1, nil, nil},
	}
	for _, c := range cases {
		if GroupNorm(x, 1, c.c, 3, c.groups, c.gamma, c.beta, 1e-5, false) != nil {
			t.Errorf("%s: accepted", c.name)
		}
		if dx, _, _ := GroupNormBackward(x, x, 1, c.c, 3, c.groups, c.gamma, c.beta, 1e-5, false); dx != nil {
			t.Errorf("%s: backward accepted", c.name)
		}
	}
}

func TestLayerNorm(t *testing.T) {
	s := 1 / math.Sqrt(1.25+1e-5)
	cases := []struct {
		name        string
		x           []float32
		rows, d     int
		gamma, beta []float32
		want        []float64
	}{
		{"no affine", []float32{1, 2, 3, 4}, 1, 4, nil, nil, []float64{-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s}},
		{"affine", []float32{1, 2, 3, 4}, 1, 4, []float32{1, 2, 3, 4}, []float32{1, 1, 1, 1},
			[]float64{1 - 1.5*s, 1 - 1*s, 1 + 1.5*s, 1 + 6*s}},
		{"two rows", []float32{5, 5, -1, 1}, 2, 2, nil, nil, []float64{0, 0, -1 / math.Sqrt(1+1e-5), 1 / math.Sqrt(1+1e-5)}},
	}
	for _, c := range cases {
		assertClose(t, c.name, LayerNorm(c.x, c.rows, c.d, c.gamma, c.beta, 1e-5), c.want, 1e-7)
	}
	if LayerNorm([]float32{1, 2, 3}, 1, 3, []float32{1}, nil, 1e-5) != nil {
		t.Error("short gamma accepted")
	}
}

func TestL2NormalizeScale(t *testing.T) {
	cases := []struct {
		name    string
		x       []float32
		rows, d int
		scale   float32
		want    []float64
	}{
		{"3-4-5", []float32{3, 4}, 1, 2, 10, []float64{6, 8}},
		{"two rows", []float32{0, -2, 1, 0}, 2, 2, 1, []float64{0, -1, 1, 0}},
		{"zero row stays zero", []float32{0, 0, 0}, 1, 3, 5, []float64{0, 0, 0}},
		// Below the 1e-12 clamp the map is a plain multiplication.
		{"tiny row", []float32{1e-13, 0}, 1, 2, 1, []float64{0.1, 0}},
	}
	for _, c := range cases {
		assertClose(t, c.name, L2NormalizeScale(c.x, c.rows, c.d, c.scale), c.want, 1e-6)
	}
}
