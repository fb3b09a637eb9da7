package ref

import (
	"math"
	"slices"
	"testing"
)

// shapeFrom turns fuzz bytes into a small shape (at most 4 dims of 0..3).
func shapeFrom(b []byte) []int {
	if len(b) > 4 {
		b = b[:4]
	}
	s := make([]int, len(b))
	for i, v := range b {
		s[i] = int(v % 4)
	}
	return s
}

func iota32(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i + 1)
	}
	return x
}

func FuzzAdd(f *testing.F) {
	f.Add([]byte{2, 3}, []byte{3})
	f.Add([]byte{2, 1}, []byte{1, 3})
	f.Add([]byte{}, []byte{3, 1})
	f.Add([]byte{2, 3}, []byte{2})
	f.Add([]byte{0, 3}, []byte{1, 1, 3})
	f.Fuzz(func(t *testing.T, ab, bb []byte) {
		as, bs := shapeFrom(ab), shapeFrom(bb)
		na, _ := numel(as...)
		nb, _ := numel(bs...)
		a, b := iota32(na), iota32(nb)
		got, shape := Add(a, as, b, bs)

		// Independent rule check: right-aligned dims equal or one of them 1.
		n := max(len(as), len(bs))
		want := make([]int, n)
		ok := true
		for i := 0; i < n; i++ {
			da, db := 1, 1
			if k := i - (n - len(as)); k >= 0 {
				da = as[k]
			}
			if k := i - (n - len(bs)); k >= 0 {
				db = bs[k]
			}
			switch {
			case da == db, db == 1:
				want[i] = da
			case da == 1:
				want[i] = db
			default:
				ok = false
			}
		}
		if !ok {
			if got != nil || shape != nil {
				t.Fatalf("%v + %v accepted as %v", as, bs, shape)
			}
			return
		}
		if !slices.Equal(shape, want) {
			t.Fatalf("%v + %v: shape %v, want %v", as, bs, shape, want)
		}
		// Each output element, from its own multi-index.
		size, _ := numel(want...)
		if len(got) != size {
			t.Fatalf("len %d, want %d", len(got), size)
		}
		for o := 0; o < size; o++ {
			rem, ia, ib, sa, sb := o, 0, 0, 1, 1
			for d := n - 1; d >= 0; d-- {
				i := rem % want[d]
				rem /= want[d]
				if k := d - (n - len(as)); k >= 0 {
					if as[k] != 1 {
						ia += i * sa
					}
					sa *= as[k]
				}
				if k := d - (n - len(bs)); k >= 0 {
					if bs[k] != 1 {
						ib += i * sb
					}
					sb *= bs[k]
				}
			}
			if got[o] != a[ia]+b[ib] {
				t.Fatalf("%v + %v: out[%d] = %v, want %v", as, bs, o, got[o], a[ia]+b[ib])
			}
		}
	})
}

func FuzzPermute(f *testing.F) {
	f.Add([]byte{2, 3, 1}, []byte{2, 0, 1})
	f.Add([]byte{3, 2}, []byte{0, 0})
	f.Add([]byte{1, 2, 3, 2}, []byte{3, 1, 0, 2})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, sb, pb []byte) {
		shape := shapeFrom(sb)
		perm := make([]int, min(len(pb), 5))
		for i := range perm {
			perm[i] = int(pb[i]%6) - 1
		}
		size, _ := numel(shape...)
		x := iota32(size)
		y := Permute(x, shape, perm)
		valid := len(perm) == len(shape)
		for i := range perm {
			if perm[i] < 0 || perm[i] >= len(perm) || slices.Index(perm, perm[i]) != i {
				valid = false
			}
		}
		if !valid {
			if y != nil {
				t.Fatalf("perm %v of %v accepted", perm, shape)
			}
			return
		}
		if len(y) != len(x) {
			t.Fatalf("len %d, want %d", len(y), len(x))
		}
		inv := make([]int, len(perm))
		for i, p := range perm {
			inv[p] = i
		}
		back := Permute(y, PermuteShape(shape, perm), inv)
		if !slices.Equal(back, x) {
			t.Fatalf("perm %v then %v of %v: %v, want %v", perm, inv, shape, back, x)
		}
	})
}

func FuzzConv2d(f *testing.F) {
	f.Add(uint8(1), uint8(2), uint8(5), uint8(4), uint8(3), uint8(3), uint8(3), int8(1), int8(1), int8(1), int8(1), int8(1), int8(1))
	f.Add(uint8(2), uint8(1), uint8(7), uint8(7), uint8(2), uint8(3), uint8(3), int8(2), int8(2), int8(0), int8(0), int8(1), int8(1))
	f.Add(uint8(1), uint8(1), uint8(2), uint8(2), uint8(1), uint8(3), uint8(3), int8(1), int8(1), int8(0), int8(0), int8(0), int8(0))
	f.Add(uint8(1), uint8(1), uint8(3), uint8(3), uint8(1), uint8(1), uint8(1), int8(0), int8(1), int8(-1), int8(0), int8(0), int8(0))
	f.Fuzz(func(t *testing.T, n, c, h, w, o, kh, kw uint8, sh, sw, pt, pl, pb, pr int8) {
		dims := []int{int(n % 3), int(c % 4), int(h % 9), int(w % 9), int(o % 4), int(kh % 5), int(kw % 5)}
		p := Conv2dParams{int(sh % 4), int(sw % 4), int(pt % 4), int(pl % 4), int(pb % 4), int(pr % 4)}
		N, C, H, W, O, KH, KW := dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
		x := randn(newRand(uint64(N*1000+C*100+H*10+W)), N*C*H*W, 1)
		wt := randn(newRand(uint64(O*100+KH*10+KW)), O*C*KH*KW, 1)
		y, ho, wo := Conv2d(x, N, C, H, W, wt, O, KH, KW, nil, p)
		valid := p.StrideH > 0 && p.StrideW > 0 && p.PadTop >= 0 && p.PadLeft >= 0 && p.PadBottom >= 0 &&
			p.PadRight >= 0 && KH > 0 && KW > 0 && H+p.PadTop+p.PadBottom >= KH && W+p.PadLeft+p.PadRight >= KW
		if !valid {
			if y != nil {
				t.Fatalf("invalid %v %+v accepted", dims, p)
			}
			return
		}
		want, wh, ww := naiveConv2d(x, N, C, H, W, wt, O, KH, KW, nil, p)
		if ho != wh || wo != ww || len(y) != len(want) {
			t.Fatalf("%v %+v: out %dx%d (%d), want %dx%d (%d)", dims, p, ho, wo, len(y), wh, ww, len(want))
		}
		if e := relErr(y, want); e > 1e-6 {
			t.Fatalf("%v %+v: relative error %.3g", dims, p, e)
		}
		// The input gradient is the adjoint: <conv(x), dy> = <x, convᵀ(dy)>.
		dy := randn(newRand(7), len(y), 1)
		dx := Conv2dBackwardInput(dy, N, C, H, W, wt, O, KH, KW, p)
		if len(dx) != len(x) {
			t.Fatalf("dx len %d, want %d", len(dx), len(x))
		}
		lhs, rhs := dot64(to64(y), to64(dy)), dot64(to64(x), to64(dx))
		if math.Abs(lhs-rhs) > 1e-5*(1+math.Abs(lhs)) {
			t.Fatalf("%v %+v: adjoint mismatch %v vs %v", dims, p, lhs, rhs)
		}
	})
}
