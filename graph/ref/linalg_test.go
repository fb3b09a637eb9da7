package ref

import (
	"fmt"
	"testing"
)

func TestMatMulHand(t *testing.T) {
	// [1 2 3; 4 5 6] · [7 8; 9 10; 11 12] = [58 64; 139 154]
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{7, 8, 9, 10, 11, 12}
	assertExact(t, "plain", MatMul(a, b, 1, 2, 2, 3, false, false, false), []float32{58, 64, 139, 154})
	// The same product with Aᵀ and Bᵀ stored.
	at := []float32{1, 4, 2, 5, 3, 6}
	bt := []float32{7, 9, 11, 8, 10, 12}
	assertExact(t, "transA transB", MatMul(at, bt, 1, 2, 2, 3, true, true, false), []float32{58, 64, 139, 154})
}

// naiveMatMul is the textbook triple loop over canonical layouts.
func naiveMatMul(a, b []float32, batch, m, n, k int, broadcastB bool) []float64 {
	out := make([]float64, batch*m*n)
	for bt := 0; bt < batch; bt++ {
		bb := bt
		if broadcastB {
			bb = 0
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for p := 0; p < k; p++ {
					s += float64(a[(bt*m+i)*k+p]) * float64(b[(bb*k+p)*n+j])
				}
				out[(bt*m+i)*n+j] = s
			}
		}
	}
	return out
}

func TestMatMul(t *testing.T) {
	shapes := []struct{ batch, m, n, k int }{
		{1, 1, 1, 1}, {1, 3, 5, 7}, {2, 4, 3, 5}, {3, 7, 1, 9}, {2, 1, 6, 4}, {1, 5, 5, 0},
	}
	r := newRand(1)
	for _, s := range shapes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, bc := range []bool{false, true} {
					name := fmt.Sprintf("%v/tA=%v/tB=%v/bcast=%v", s, tA, tB, bc)
					t.Run(name, func(t *testing.T) {
						bb := s.batch
						if bc {
							bb = 1
						}
						a := randn(r, s.batch*s.m*s.k, 1)
						b := randn(r, bb*s.k*s.n, 1)
						want := naiveMatMul(a, b, s.batch, s.m, s.n, s.k, bc)
						// Stored transposes are made with Permute, an
						// independent path.
						aIn, bIn := a, b
						if tA {
							aIn = Permute(a, []int{s.batch, s.m, s.k}, []int{0, 2, 1})
						}
						if tB {
							bIn = Permute(b, []int{bb, s.k, s.n}, []int{0, 2, 1})
						}
						got := MatMul(aIn, bIn, s.batch, s.m, s.n, s.k, tA, tB, bc)
						if len(got) != len(want) {
							t.Fatalf("len %d, want %d", len(got), len(want))
						}
						assertClose(t, "MatMul", got, want, 1e-6)
					})
				}
			}
		}
	}
}

func TestMatMulRejects(t *testing.T) {
	a, b := make([]float32, 6), make([]float32, 6)
	cases := []struct {
		name           string
		a, b           []float32
		batch, m, n, k int
		bcast          bool
	}{
		{"short a", a[:5], b, 1, 2, 2, 3, false},
		{"short b", a, b[:5], 1, 2, 2, 3, false},
		{"b not broadcast", a, b, 2, 1, 2, 3, false},
		{"negative", a, b, -1, 2, 2, 3, false},
		{"output overflows", nil, nil, 1, 1 << 40, 1 << 40, 0, false},
	}
	for _, c := range cases {
		if got := MatMul(c.a, c.b, c.batch, c.m, c.n, c.k, false, false, c.bcast); got != nil {
			t.Errorf("%s: got %d values, want nil", c.name, len(got))
		}
		if da, db := MatMulBackward(c.a, c.b, make([]float32, 4), c.batch, c.m, c.n, c.k, false, false, c.bcast); da != nil || db != nil {
			t.Errorf("%s: backward not nil", c.name)
		}
	}
}

func TestLinear(t *testing.T) {
	// Hand case: x=[1 2], w=[[1 0],[0 1],[1 1]], b=[0.5 0 -1] -> [1.5 2 2].
	assertExact(t, "hand", Linear([]float32{1, 2}, 1, 2, []float32{1, 0, 0, 1, 1, 1}, 3, []float32{0.5, 0, -1}), []float32{1.5, 2, 2})
	assertExact(t, "nil bias", Linear([]float32{1, 2}, 1, 2, []float32{1, 0, 0, 1, 1, 1}, 3, nil), []float32{1, 2, 3})
	if Linear([]float32{1, 2}, 1, 2, []float32{1, 0, 0, 1, 1, 1}, 3, []float32{1}) != nil {
		t.Error("short bias accepted")
	}
	r := newRand(2)
	for _, s := range []struct{ rows, in, out int }{{1, 1, 1}, {3, 5, 7}, {8, 16, 3}, {5, 9, 11}} {
		x := randn(r, s.rows*s.in, 1)
		w := randn(r, s.out*s.in, 1)
		bias := randn(r, s.out, 1)
		// Linear = x · wᵀ + bias, via MatMul(transB) and broadcast Add.
		xw := MatMul(x, w, 1, s.rows, s.out, s.in, false, true, false)
		want, shape := Add(xw, []int{s.rows, s.out}, bias, []int{s.out})
		if shape == nil {
			t.Fatal("Add rejected shapes")
		}
		assertClose(t, fmt.Sprint(s), Linear(x, s.rows, s.in, w, s.out, bias), want, 1e-6)
	}
}

func TestAttention(t *testing.T) {
	// Hand case: equal scores average the values; a dominant score picks
	// its value.
	q := []float32{1, 0}
	k := []float32{0, 1, 0, 1} // both keys orthogonal to q: scores 0, 0
	v := []float32{2, 4}
	assertClose(t, "uniform", Attention(q, k, v, 1, 1, 2, 1, 2, 1, 1, false), []float64{3}, 1e-7)
	k = []float32{100, 0, 0, 0}
	assertClose(t, "peaked", Attention(q, k, v, 1, 1, 2, 1, 2, 1, 1, false), []float64{2}, 1e-7)
	// Causal: the first query sees only the first key.
	q2 := []float32{1, 0, 1, 0}
	k2 := []float32{0, 1, 0, 1}
	assertClose(t, "causal", Attention(q2, k2, v, 1, 2, 2, 1, 2, 1, 1, true), []float64{2, 3}, 1e-7)

	shapes := []struct {
		batch, nq, nk, heads, dHead, dHeadV int
		causal                              bool
	}{
		{1, 1, 1, 1, 1, 1, false},
		{2, 5, 7, 3, 4, 2, false},
		{1, 6, 6, 2, 8, 8, true},
		{2, 7, 7, 4, 3, 5, true},
		{1, 4, 9, 1, 6, 3, false},
	}
	r := newRand(3)
	for _, s := range shapes {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			q := randn(r, s.batch*s.nq*s.heads*s.dHead, 1)
			k := randn(r, s.batch*s.nk*s.heads*s.dHead, 1)
			v := randn(r, s.batch*s.nk*s.heads*s.dHeadV, 1)
			scale := float32(1 / float64(s.dHead))
			got := Attention(q, k, v, s.batch, s.nq, s.nk, s.heads, s.dHead, s.dHeadV, scale, s.causal)
			want := explicitAttention(t, q, k, v, s.batch, s.nq, s.nk, s.heads, s.dHead, s.dHeadV, scale, s.causal)
			assertClose(t, "Attention", got, want, 1e-5)
		})
	}
}

func TestCausalAttention(t *testing.T) {
	r := newRand(4)
	for _, s := range []struct {
		batch, nq, heads, dHead, dHeadV, offset int
	}{
		{1, 1, 1, 1, 1, 0},
		{1, 1, 1, 2, 2, 5},
		{2, 5, 3, 4, 2, 7},
		{1, 20, 2, 8, 8, 57},
	} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			nk := s.nq + s.offset
			q := randn(r, s.batch*s.nq*s.heads*s.dHead, 1)
			k := randn(r, s.batch*nk*s.heads*s.dHead, 1)
			v := randn(r, s.batch*nk*s.heads*s.dHeadV, 1)
			scale := float32(0.6)
			got := CausalAttention(q, k, v, s.batch, s.nq, nk, s.heads, s.dHead, s.dHeadV, scale, s.offset)
			want := explicitCausalAttention(t, q, k, v, s.batch, s.nq, nk, s.heads, s.dHead, s.dHeadV, scale, true, s.offset)
			assertClose(t, "CausalAttention", got, want, 1e-5)
			// The suffix of a causal self-attention: with queries for the
			// first offset positions prepended, plain causal attention
			// gives the same last nq rows (what prefix reuse relies on).
			pre := randn(r, s.batch*s.offset*s.heads*s.dHead, 1)
			full := make([]float32, 0, s.batch*nk*s.heads*s.dHead)
			row := s.heads * s.dHead
			for b := 0; b < s.batch; b++ {
				full = append(full, pre[b*s.offset*row:(b+1)*s.offset*row]...)
				full = append(full, q[b*s.nq*row:(b+1)*s.nq*row]...)
			}
			all := Attention(full, k, v, s.batch, nk, nk, s.heads, s.dHead, s.dHeadV, scale, true)
			orow := s.heads * s.dHeadV
			var tail []float32
			for b := 0; b < s.batch; b++ {
				tail = append(tail, all[(b*nk+s.offset)*orow:(b+1)*nk*orow]...)
			}
			assertClose(t, "suffix of causal attention", got, to64(tail), 1e-6)
		})
	}
	if CausalAttention(make([]float32, 4), make([]float32, 4), make([]float32, 4), 1, 2, 2, 1, 2, 2, 1, 1) != nil {
		t.Error("nk != nq+offset accepted")
	}
}

// explicitAttention builds Softmax(Q·Kᵀ·scale)·V per head from Permute,
// MatMul, Scale, Add (the mask) and Softmax.
func explicitAttention(t *testing.T, q, k, v []float32, batch, nq, nk, heads, dHead, dHeadV int, scale float32, causal bool) []float32 {
	t.Helper()
	return explicitCausalAttention(t, q, k, v, batch, nq, nk, heads, dHead, dHeadV, scale, causal, 0)
}

// explicitCausalAttention is explicitAttention whose causal mask hides
// keys j > i+offset from query i.
func explicitCausalAttention(t *testing.T, q, k, v []float32, batch, nq, nk, heads, dHead, dHeadV int, scale float32, causal bool, offset int) []float32 {
	t.Helper()
	bh := batch * heads
	// [batch,n,heads,d] -> [batch,heads,n,d]
	qh := Permute(q, []int{batch, nq, heads, dHead}, []int{0, 2, 1, 3})
	kh := Permute(k, []int{batch, nk, heads, dHead}, []int{0, 2, 1, 3})
	vh := Permute(v, []int{batch, nk, heads, dHeadV}, []int{0, 2, 1, 3})
	s := Scale(MatMul(qh, kh, bh, nq, nk, dHead, false, true, false), scale)
	if causal {
		mask := make([]float32, nq*nk)
		for i := 0; i < nq; i++ {
			for j := i + offset + 1; j < nk; j++ {
				mask[i*nk+j] = -1e30
			}
		}
		s, _ = Add(s, []int{bh, nq, nk}, mask, []int{nq, nk})
	}
	p := Softmax(s, bh*nq, nk)
	o := MatMul(p, vh, bh, nq, dHeadV, nk, false, false, false)
	out := Permute(o, []int{batch, heads, nq, dHeadV}, []int{0, 2, 1, 3})
	if out == nil {
		t.Fatal("explicit attention: a building block rejected its shapes")
	}
	return out
}

func TestSoftmax(t *testing.T) {
	cases := []struct {
		name    string
		x       []float32
		rows, d int
		want    []float64
	}{
		{"ln3", []float32{0, 1.0986123}, 1, 2, []float64{0.25, 0.75}},
		{"large logits", []float32{1000, 1000, -1000, 1000}, 2, 2, []float64{0.5, 0.5, 0, 1}},
		{"single", []float32{-7}, 1, 1, []float64{1}},
		{"uniform row", []float32{3, 3, 3, 3, 0, 0, 0, 0}, 2, 4, []float64{.25, .25, .25, .25, .25, .25, .25, .25}},
	}
	for _, c := range cases {
		assertClose(t, c.name, Softmax(c.x, c.rows, c.d), c.want, 1e-7)
	}
	if Softmax([]float32{1, 2, 3}, 2, 2) != nil {
		t.Error("mismatched size accepted")
	}
}
