package ref

import (
	"fmt"
	"testing"
)

// Every backward function is checked against central differences of the
// float64 instantiation of its forward, on the same float32-valued inputs,
// through the scalar loss L = Σ dy·f(x).

func TestMatMulBackward(t *testing.T) {
	r := newRand(10)
	for _, s := range []struct{ batch, m, n, k int }{{1, 1, 1, 1}, {2, 3, 4, 5}, {3, 2, 5, 3}} {
		for _, flags := range [][3]bool{{false, false, false}, {true, false, false}, {false, true, false}, {true, true, true}, {false, false, true}} {
			tA, tB, bc := flags[0], flags[1], flags[2]
			t.Run(fmt.Sprint(s, flags), func(t *testing.T) {
				bb := s.batch
				if bc {
					bb = 1
				}
				a, b := randn(r, s.batch*s.m*s.k, 1), randn(r, bb*s.k*s.n, 1)
				dy := randn(r, s.batch*s.m*s.n, 1)
				da, db := MatMulBackward(a, b, dy, s.batch, s.m, s.n, s.k, tA, tB, bc)
				a64, b64, dy64 := to64(a), to64(b), to64(dy)
				loss := func() float64 { return dot64(dy64, matMul(a64, b64, s.batch, s.m, s.n, s.k, tA, tB, bc)) }
				checkGrad(t, "da", da, a64, loss)
				checkGrad(t, "db", db, b64, loss)
			})
		}
	}
}

func TestLinearBackward(t *testing.T) {
	r := newRand(11)
	for _, s := range []struct{ rows, in, out int }{{1, 1, 1}, {3, 4, 5}, {6, 3, 2}} {
		x, w, bias := randn(r, s.rows*s.in, 1), randn(r, s.out*s.in, 1), randn(r, s.out, 1)
		dy := randn(r, s.rows*s.out, 1)
		dx, dw, db := LinearBackward(x, s.rows, s.in, w, s.out, dy)
		x64, w64, b64, dy64 := to64(x), to64(w), to64(bias), to64(dy)
		loss := func() float64 { return dot64(dy64, linear(x64, s.rows, s.in, w64, s.out, b64)) }
		name := fmt.Sprint(s)
		checkGrad(t, name+" dx", dx, x64, loss)
		checkGrad(t, name+" dw", dw, w64, loss)
		checkGrad(t, name+" db", db, b64, loss)
	}
}

func TestConv2dBackwardInput(t *testing.T) {
	r := newRand(12)
	for _, cs := range convCases {
		x := randn(r, cs.n*cs.c*cs.h*cs.w, 1)
		wt := randn(r, cs.o*cs.c*cs.kh*cs.kw, 1)
		_, ho, wo := Conv2d(x, cs.n, cs.c, cs.h, cs.w, wt, cs.o, cs.kh, cs.kw, nil, cs.p)
		dy := randn(r, cs.n*cs.o*ho*wo, 1)
		dx := Conv2dBackwardInput(dy, cs.n, cs.c, cs.h, cs.w, wt, cs.o, cs.kh, cs.kw, cs.p)
		x64, wt64, dy64 := to64(x), to64(wt), to64(dy)
		loss := func() float64 {
			y, _, _ := conv2d(x64, cs.n, cs.c, cs.h, cs.w, wt64, cs.o, cs.kh, cs.kw, nil, cs.p)
			return dot64(dy64, y)
		}
		checkGrad(t, fmt.Sprint(cs), dx, x64, loss)
	}
}

func TestGroupNormBackward(t *testing.T) {
	r := newRand(13)
	for _, s := range []struct {
		n, c, hw, groups int
		silu, affine     bool
	}{
		{1, 2, 3, 1, false, true},
		{2, 4, 5, 2, true, true},
		{1, 6, 4, 3, true, false},
		{2, 3, 7, 3, false, true},
	} {
		x := randn(r, s.n*s.c*s.hw, 2)
		var gamma, beta []float32
		if s.affine {
			gamma, beta = randn(r, s.c, 1), randn(r, s.c, 1)
		}
		dy := randn(r, len(x), 1)
		const eps = 1e-5
		dx, dg, db := GroupNormBackward(x, dy, s.n, s.c, s.hw, s.groups, gamma, beta, eps, s.silu)
		x64, g64, b64, dy64 := to64(x), to64(gamma), to64(beta), to64(dy)
		if !s.affine {
			g64, b64 = nil, nil
		}
		loss := func() float64 {
			return dot64(dy64, groupNorm(x64, s.n, s.c, s.hw, s.groups, g64, b64, eps, s.silu))
		}
		name := fmt.Sprint(s)
		checkGrad(t, name+" dx", dx, x64, loss)
		if s.affine {
			checkGrad(t, name+" dgamma", dg, g64, loss)
			checkGrad(t, name+" dbeta", db, b64, loss)
		}
	}
}

func TestLayerNormBackward(t *testing.T) {
	r := newRand(14)
	for _, s := range []struct{ rows, d int }{{1, 2}, {3, 5}, {4, 16}} {
		x, gamma, beta := randn(r, s.rows*s.d, 2), randn(r, s.d, 1), randn(r, s.d, 1)
		dy := randn(r, len(x), 1)
		const eps = 1e-5
		dx, dg, db := LayerNormBackward(x, dy, s.rows, s.d, gamma, eps)
		x64, g64, b64, dy64 := to64(x), to64(gamma), to64(beta), to64(dy)
		loss := func() float64 { return dot64(dy64, layerNorm(x64, s.rows, s.d, g64, b64, eps)) }
		name := fmt.Sprint(s)
		checkGrad(t, name+" dx", dx, x64, loss)
		checkGrad(t, name+" dgamma", dg, g64, loss)
		checkGrad(t, name+" dbeta", db, b64, loss)
	}
}

func TestAttentionBackward(t *testing.T) {
	r := newRand(15)
	for _, s := range []struct {
		batch, nq, nk, heads, dHead, dHeadV int
		causal                              bool
		offset                              int // causal: query i sees keys j <= i+offset
	}{
		{1, 1, 1, 1, 1, 1, false, 0},
		{1, 3, 4, 2, 3, 2, false, 0},
		{2, 4, 4, 2, 2, 3, true, 0},
		{1, 5, 3, 1, 4, 4, false, 0},
		{2, 3, 7, 2, 3, 2, true, 4},
	} {
		q := randn(r, s.batch*s.nq*s.heads*s.dHead, 1)
		k := randn(r, s.batch*s.nk*s.heads*s.dHead, 1)
		v := randn(r, s.batch*s.nk*s.heads*s.dHeadV, 1)
		dout := randn(r, s.batch*s.nq*s.heads*s.dHeadV, 1)
		scale := float32(0.7)
		dq, dk, dv := AttentionBackward(q, k, v, dout, s.batch, s.nq, s.nk, s.heads, s.dHead, s.dHeadV, scale, s.causal)
		if s.offset > 0 {
			dq, dk, dv = CausalAttentionBackward(q, k, v, dout, s.batch, s.nq, s.nk, s.heads, s.dHead, s.dHeadV, scale, s.offset)
		}
		q64, k64, v64, do64 := to64(q), to64(k), to64(v), to64(dout)
		loss := func() float64 {
			return dot64(do64, attention(q64, k64, v64, s.batch, s.nq, s.nk, s.heads, s.dHead, s.dHeadV, scale, s.causal, s.offset))
		}
		name := fmt.Sprint(s)
		if s.nk > 1 { // with one key the output does not depend on q or k
			checkGrad(t, name+" dq", dq, q64, loss)
			checkGrad(t, name+" dk", dk, k64, loss)
		}
		checkGrad(t, name+" dv", dv, v64, loss)
	}
}

func TestSoftmaxBackward(t *testing.T) {
	r := newRand(16)
	for _, s := range []struct{ rows, d int }{{1, 2}, {3, 7}, {2, 16}} {
		x, dy := randn(r, s.rows*s.d, 2), randn(r, s.rows*s.d, 1)
		dx := SoftmaxBackward(Softmax(x, s.rows, s.d), dy, s.rows, s.d)
		x64, dy64 := to64(x), to64(dy)
		checkGrad(t, fmt.Sprint(s), dx, x64, func() float64 { return dot64(dy64, softmax(x64, s.rows, s.d)) })
	}
}

func TestActivationBackward(t *testing.T) {
	r := newRand(17)
	x := randn(r, 40, 2)
	// Keep LeakyReLU's kink out of the finite-difference stencil.
	for i, v := range x {
		if v > -1e-3 && v < 1e-3 {
			x[i] = 0.5
		}
	}
	dy := randn(r, len(x), 1)
	x64, dy64 := to64(x), to64(dy)
	leaky := func(v float64) float64 {
		if v > 0 {
			return v
		}
		return 0.2 * v
	}
	cases := []struct {
		name string
		back func(x, dy []float32) []float32
		f    func(float64) float64
	}{
		{"SiLU", SiLUBackward, silu},
		{"GELU", GELUBackward, gelu},
		{"GELUTanh", GELUTanhBackward, geluTanh},
		{"QuickGELU", QuickGELUBackward, quickGELU},
		{"LeakyReLU", func(x, dy []float32) []float32 { return LeakyReLUBackward(x, dy, 0.2) }, leaky},
	}
	for _, c := range cases {
		checkGrad(t, c.name, c.back(x, dy), x64, func() float64 { return dot64(dy64, unary(x64, c.f)) })
	}
	// The forward entry points use the same scalar functions.
	assertClose(t, "LeakyReLU forward", LeakyReLU(x, 0.2), unary(x64, leaky), 1e-7)
}

func TestGEGLUBackward(t *testing.T) {
	r := newRand(18)
	for _, s := range []struct{ rows, f int }{{1, 1}, {3, 4}, {2, 7}} {
		x, dy := randn(r, s.rows*2*s.f, 1.5), randn(r, s.rows*s.f, 1)
		x64, dy64 := to64(x), to64(dy)
		checkGrad(t, fmt.Sprint(s), GEGLUBackward(x, dy, s.rows, s.f), x64,
			func() float64 { return dot64(dy64, geglu(x64, s.rows, s.f)) })
	}
}

func TestUpsample2xBackward(t *testing.T) {
	r := newRand(19)
	for _, s := range []struct{ n, c, h, w int }{{1, 1, 1, 1}, {2, 3, 2, 3}, {1, 2, 3, 1}} {
		x, dy := randn(r, s.n*s.c*s.h*s.w, 1), randn(r, 4*s.n*s.c*s.h*s.w, 1)
		x64, dy64 := to64(x), to64(dy)
		checkGrad(t, fmt.Sprint(s), Upsample2xBackward(dy, s.n, s.c, s.h, s.w), x64,
			func() float64 { return dot64(dy64, upsample2x(x64, s.n, s.c, s.h, s.w)) })
	}
}

func TestL2NormalizeScaleBackward(t *testing.T) {
	r := newRand(20)
	for _, s := range []struct{ rows, d int }{{1, 2}, {2, 3}, {3, 64}} {
		x, dy := randn(r, s.rows*s.d, 1), randn(r, s.rows*s.d, 1)
		x64, dy64 := to64(x), to64(dy)
		const scale = 0.37
		checkGrad(t, fmt.Sprint(s), L2NormalizeScaleBackward(x, dy, s.rows, s.d, scale), x64,
			func() float64 { return dot64(dy64, l2NormalizeScale(x64, s.rows, s.d, scale)) })
	}
	// Below the clamp the map is linear with slope scale/1e-12.
	dx := L2NormalizeScaleBackward([]float32{0, 0}, []float32{1, -2}, 1, 2, 3)
	assertClose(t, "clamped", dx, []float64{3e12, -6e12}, 1e-7)
}

func TestBypassBackward(t *testing.T) {
	r := newRand(21)
	for _, s := range []struct{ rows, d int }{{1, 1}, {1, 8}, {3, 5}} {
		h, v, dy := randn(r, s.rows*s.d, 1), randn(r, s.rows*s.d, 1), randn(r, s.rows*s.d, 1)
		dh, dv := BypassBackward(h, v, dy, s.d, 0.2)
		h64, v64, dy64 := to64(h), to64(v), to64(dy)
		loss := func() float64 { return dot64(dy64, bypass(h64, v64, s.d, 0.2)) }
		name := fmt.Sprint(s)
		checkGrad(t, name+" dh", dh, h64, loss)
		if s.d > 1 { // in one dimension v/‖v‖ is constant
			checkGrad(t, name+" dv", dv, v64, loss)
		}
	}
}

func TestMSEBackward(t *testing.T) {
	r := newRand(22)
	for _, n := range []int{1, 7, 33} {
		a, b := randn(r, n, 1), randn(r, n, 1)
		a64, b64 := to64(a), to64(b)
		checkGrad(t, fmt.Sprint(n), MSEBackward(a, b), a64, func() float64 { return mse(a64, b64) })
	}
}
