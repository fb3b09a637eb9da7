package ref

import (
	"fmt"
	"testing"
)

func TestConv2dHand(t *testing.T) {
	// 3x3 input 1..9, 2x2 kernel [1 0; 0 -1]: y = x[i,j] - x[i+1,j+1] = -4.
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	wt := []float32{1, 0, 0, -1}
	y, ho, wo := Conv2d(x, 1, 1, 3, 3, wt, 1, 2, 2, []float32{0.5}, Conv2dParams{StrideH: 1, StrideW: 1})
	if ho != 2 || wo != 2 {
		t.Fatalf("out size %dx%d, want 2x2", ho, wo)
	}
	assertExact(t, "valid", y, []float32{-3.5, -3.5, -3.5, -3.5})
	// VAE-encoder style: pad bottom/right by one, stride 2, 2x2 ones kernel.
	ones := []float32{1, 1, 1, 1}
	y, ho, wo = Conv2d(x, 1, 1, 3, 3, ones, 1, 2, 2, nil, Conv2dParams{StrideH: 2, StrideW: 2, PadBottom: 1, PadRight: 1})
	if ho != 2 || wo != 2 {
		t.Fatalf("asymmetric: out size %dx%d, want 2x2", ho, wo)
	}
	assertExact(t, "asymmetric", y, []float32{1 + 2 + 4 + 5, 3 + 6, 7 + 8, 9})
}

// naiveConv2d pads the input explicitly and slides the window: a different
// formulation from Conv2d's precomputed column ranges.
func naiveConv2d(x []float32, n, c, h, w int, wt []float32, o, kh, kw int, bias []float32, p Conv2dParams) ([]float64, int, int) {
	ph, pw := h+p.PadTop+p.PadBottom, w+p.PadLeft+p.PadRight
	padded := make([]float64, n*c*ph*pw)
	for b := 0; b < n*c; b++ {
		for y := 0; y < h; y++ {
			for xx := 0; xx < w; xx++ {
				padded[(b*ph+y+p.PadTop)*pw+xx+p.PadLeft] = float64(x[(b*h+y)*w+xx])
			}
		}
	}
	ho, wo := (ph-kh)/p.StrideH+1, (pw-kw)/p.StrideW+1
	out := make([]float64, n*o*ho*wo)
	for b := 0; b < n; b++ {
		for oc := 0; oc < o; oc++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					s := 0.0
					if bias != nil {
						s = float64(bias[oc])
					}
					for ic := 0; ic < c; ic++ {
						for ky := 0; ky < kh; ky++ {
							for kx := 0; kx < kw; kx++ {
								s += float64(wt[((oc*c+ic)*kh+ky)*kw+kx]) *
									padded[((b*c+ic)*ph+oy*p.StrideH+ky)*pw+ox*p.StrideW+kx]
							}
						}
					}
					out[((b*o+oc)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return out, ho, wo
}

var convCases = []struct {
	n, c, h, w, o, kh, kw int
	p                     Conv2dParams
}{
	{1, 1, 1, 1, 1, 1, 1, Conv2dParams{StrideH: 1, StrideW: 1}},
	{2, 3, 5, 7, 4, 3, 3, Conv2dParams{1, 1, 1, 1, 1, 1}},       // SD conv3
	{1, 2, 8, 8, 3, 3, 3, Conv2dParams{2, 2, 1, 1, 1, 1}},       // UNet downsample
	{1, 2, 7, 9, 2, 3, 3, Conv2dParams{2, 2, 0, 0, 1, 1}},       // VAE downsample, odd size
	{2, 2, 4, 5, 3, 1, 1, Conv2dParams{StrideH: 1, StrideW: 1}}, // 1x1
	{1, 3, 6, 5, 2, 2, 3, Conv2dParams{1, 2, 0, 2, 1, 0}},       // mixed strides and pads
	{1, 1, 2, 2, 1, 3, 3, Conv2dParams{3, 3, 2, 2, 2, 2}},       // stride leaves input uncovered
}

func TestConv2d(t *testing.T) {
	r := newRand(4)
	for _, cs := range convCases {
		t.Run(fmt.Sprint(cs), func(t *testing.T) {
			x := randn(r, cs.n*cs.c*cs.h*cs.w, 1)
			wt := randn(r, cs.o*cs.c*cs.kh*cs.kw, 1)
			bias := randn(r, cs.o, 1)
			got, ho, wo := Conv2d(x, cs.n, cs.c, cs.h, cs.w, wt, cs.o, cs.kh, cs.kw, bias, cs.p)
			want, wh, ww := naiveConv2d(x, cs.n, cs.c, cs.h, cs.w, wt, cs.o, cs.kh, cs.kw, bias, cs.p)
			if ho != wh || wo != ww {
				t.Fatalf("out size %dx%d, want %dx%d", ho, wo, wh, ww)
			}
			assertClose(t, "Conv2d", got, want, 1e-6)
		})
	}
}

func TestConv2d1x1IsLinear(t *testing.T) {
	r := newRand(5)
	for _, s := range []struct{ n, c, h, w, o int }{{1, 1, 1, 1, 1}, {2, 3, 4, 5, 6}, {1, 8, 3, 3, 2}} {
		x := randn(r, s.n*s.c*s.h*s.w, 1)
		wt := randn(r, s.o*s.c, 1)
		bias := randn(r, s.o, 1)
		y, _, _ := Conv2d(x, s.n, s.c, s.h, s.w, wt, s.o, 1, 1, bias, Conv2dParams{StrideH: 1, StrideW: 1})
		// NCHW -> NHWC, Linear over channels, back to NCHW.
		xr := Permute(x, []int{s.n, s.c, s.h, s.w}, []int{0, 2, 3, 1})
		lin := Linear(xr, s.n*s.h*s.w, s.c, wt, s.o, bias)
		want := Permute(lin, []int{s.n, s.h, s.w, s.o}, []int{0, 3, 1, 2})
		assertClose(t, fmt.Sprint(s), y, want, 1e-6)
	}
}

func TestConv2dRejects(t *testing.T) {
	x, wt := make([]float32, 9), make([]float32, 9)
	one := Conv2dParams{StrideH: 1, StrideW: 1}
	cases := []struct {
		name string
		x    []float32
		h    int
		kh   int
		p    Conv2dParams
	}{
		{"zero stride", x, 3, 3, Conv2dParams{}},
		{"negative pad", x, 3, 3, Conv2dParams{1, 1, -1, 0, 0, 0}},
		{"kernel larger than input", x[:4], 2, 3, one},
		{"short x", x[:8], 3, 3, one},
		{"huge pad", x, 3, 3, Conv2dParams{1, 1, 1 << 62, 0, 1 << 62, 0}},
	}
	for _, c := range cases {
		if y, ho, wo := Conv2d(c.x, 1, 1, c.h, 3, wt, 1, c.kh, 3, nil, c.p); y != nil || ho != 0 || wo != 0 {
			t.Errorf("%s: accepted (%dx%d)", c.name, ho, wo)
		}
		if Conv2dBackwardInput([]float32{1}, 1, 1, c.h, 3, wt, 1, c.kh, 3, c.p) != nil && c.name != "short x" {
			t.Errorf("%s: backward accepted", c.name)
		}
	}
	if y, _, _ := Conv2d(x, 1, 1, 3, 3, wt, 1, 3, 3, []float32{1, 2}, one); y != nil {
		t.Error("wrong bias length accepted")
	}
}

func TestUpsample2x(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6} // [1,1,2,3]
	want := []float32{
		1, 1, 2, 2, 3, 3,
		1, 1, 2, 2, 3, 3,
		4, 4, 5, 5, 6, 6,
		4, 4, 5, 5, 6, 6,
	}
	assertExact(t, "2x3", Upsample2x(x, 1, 1, 2, 3), want)
	assertExact(t, "two planes", Upsample2x([]float32{1, 2}, 1, 2, 1, 1), []float32{1, 1, 1, 1, 2, 2, 2, 2})
	assertExact(t, "backward sums blocks", Upsample2xBackward(want, 1, 1, 2, 3), []float32{4, 8, 12, 16, 20, 24})
	if Upsample2x(x, 1, 1, 2, 2) != nil || Upsample2xBackward(x, 1, 1, 2, 3) != nil {
		t.Error("size mismatch accepted")
	}
}

func TestConcat(t *testing.T) {
	a := []float32{1, 2, 3, 4}                // [2,1,2]
	b := []float32{5, 6, 7, 8, 9, 10, 11, 12} // [2,2,2]
	assertExact(t, "channels", Concat(a, b, 2, 1, 2, 2), []float32{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12})
	assertExact(t, "empty b", Concat(a, nil, 2, 1, 0, 2), a)
	if Concat(a, b, 2, 2, 2, 2) != nil {
		t.Error("size mismatch accepted")
	}
}
