package ref

import (
	"math"
	"slices"
	"testing"
)

func TestBroadcast(t *testing.T) {
	cases := []struct {
		name      string
		a         []float32
		aShape    []int
		b         []float32
		bShape    []int
		sum, prod []float32
		shape     []int
	}{
		{"same", []float32{1, 2}, []int{2}, []float32{3, 4}, []int{2}, []float32{4, 6}, []float32{3, 8}, []int{2}},
		{"row vector", []float32{1, 2, 3, 4, 5, 6}, []int{2, 3}, []float32{10, 20, 30}, []int{3},
			[]float32{11, 22, 33, 14, 25, 36}, []float32{10, 40, 90, 40, 100, 180}, []int{2, 3}},
		{"outer", []float32{1, 2}, []int{2, 1}, []float32{10, 20, 30}, []int{1, 3},
			[]float32{11, 21, 31, 12, 22, 32}, []float32{10, 20, 30, 20, 40, 60}, []int{2, 3}},
		{"scalar", []float32{2}, nil, []float32{1, 2, 3}, []int{3, 1}, []float32{3, 4, 5}, []float32{2, 4, 6}, []int{3, 1}},
		{"middle axis", []float32{1, 2, 3, 4}, []int{2, 1, 2}, []float32{0, 10}, []int{2, 1},
			[]float32{1, 2, 11, 12, 3, 4, 13, 14}, []float32{0, 0, 10, 20, 0, 0, 30, 40}, []int{2, 2, 2}},
		{"empty", nil, []int{0, 3}, []float32{1, 2, 3}, []int{1, 3}, []float32{}, []float32{}, []int{0, 3}},
	}
	for _, c := range cases {
		sum, s1 := Add(c.a, c.aShape, c.b, c.bShape)
		prod, s2 := Mul(c.a, c.aShape, c.b, c.bShape)
		if !slices.Equal(s1, c.shape) || !slices.Equal(s2, c.shape) {
			t.Errorf("%s: shapes %v %v, want %v", c.name, s1, s2, c.shape)
			continue
		}
		assertExact(t, c.name+" Add", sum, c.sum)
		assertExact(t, c.name+" Mul", prod, c.prod)
	}
	rejects := []struct {
		name   string
		a      []float32
		aShape []int
		b      []float32
		bShape []int
	}{
		{"incompatible", make([]float32, 6), []int{2, 3}, make([]float32, 2), []int{2}},
		{"data short", make([]float32, 5), []int{2, 3}, make([]float32, 3), []int{3}},
		{"negative dim", nil, []int{-1, 0}, nil, []int{0}},
		{"overflowing shape", nil, []int{0, 1 << 62, 1 << 62}, nil, []int{0}},
	}
	for _, c := range rejects {
		if out, shape := Add(c.a, c.aShape, c.b, c.bShape); out != nil || shape != nil {
			t.Errorf("%s: accepted as %v", c.name, shape)
		}
	}
}

func TestReductions(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // [2,3,2]
	assertExact(t, "Sum", Sum(x, 2, 3, 2), []float32{9, 12, 27, 30})
	assertExact(t, "Mean", Mean(x, 2, 3, 2), []float32{3, 4, 9, 10})
	assertExact(t, "Sum all", Sum(x, 1, 12, 1), []float32{78})
	assertExact(t, "Sum empty axis", Sum(nil, 2, 0, 1), []float32{0, 0})
	if m := Mean(nil, 1, 0, 1); len(m) != 1 || !math.IsNaN(float64(m[0])) {
		t.Errorf("Mean over an empty axis = %v, want NaN", m)
	}
	if Sum(x, 2, 2, 2) != nil {
		t.Error("size mismatch accepted")
	}
	assertExact(t, "Scale", Scale([]float32{1, -2, 0.5}, 3), []float32{3, -6, 1.5})
}

func TestMSE(t *testing.T) {
	if got := MSE([]float32{1, 2, 3}, []float32{1, 0, 0}); got != 13.0/3 {
		t.Errorf("MSE = %v, want 13/3", got)
	}
	assertClose(t, "MSEBackward", MSEBackward([]float32{1, 2, 3}, []float32{1, 0, 0}), []float64{0, 4.0 / 3, 2}, 1e-7)
	if !math.IsNaN(MSE([]float32{1}, nil)) || !math.IsNaN(MSE(nil, nil)) || MSEBackward([]float32{1}, nil) != nil {
		t.Error("mismatched or empty MSE not rejected")
	}
}

func TestPermute(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	assertExact(t, "transpose", Permute(x, []int{2, 3}, []int{1, 0}), []float32{1, 4, 2, 5, 3, 6})
	assertExact(t, "identity", Permute(x, []int{2, 3}, []int{0, 1}), x)
	assertExact(t, "scalar", Permute([]float32{7}, nil, nil), []float32{7})
	// Element (i,j,k) of a [2,3,4] tensor holds 100i+10j+k; after perm
	// (2,0,1) position (k,i,j) must hold it.
	shape := []int{2, 3, 4}
	y := make([]float32, 24)
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				y[(i*3+j)*4+k] = float32(100*i + 10*j + k)
			}
		}
	}
	p := Permute(y, shape, []int{2, 0, 1})
	if s := PermuteShape(shape, []int{2, 0, 1}); !slices.Equal(s, []int{4, 2, 3}) {
		t.Fatalf("PermuteShape = %v", s)
	}
	for k := 0; k < 4; k++ {
		for i := 0; i < 2; i++ {
			for j := 0; j < 3; j++ {
				if got := p[(k*2+i)*3+j]; got != float32(100*i+10*j+k) {
					t.Fatalf("permuted (%d,%d,%d) = %v", k, i, j, got)
				}
			}
		}
	}
	// Applying the inverse permutation restores the input.
	assertExact(t, "inverse", Permute(p, []int{4, 2, 3}, []int{1, 2, 0}), y)
	for _, perm := range [][]int{{0, 0}, {0, 2}, {1}, {-1, 0}} {
		if Permute(x, []int{2, 3}, perm) != nil {
			t.Errorf("perm %v accepted", perm)
		}
	}
	if Permute(x[:5], []int{2, 3}, []int{1, 0}) != nil {
		t.Error("size mismatch accepted")
	}
}

func TestEmbedding(t *testing.T) {
	table := []float32{0, 1, 10, 11, 20, 21} // [3,2]
	assertExact(t, "gather", Embedding(table, 3, 2, []int32{2, 0, 2}), []float32{20, 21, 0, 1, 20, 21})
	assertExact(t, "no ids", Embedding(table, 3, 2, nil), []float32{})
	for _, ids := range [][]int32{{3}, {-1}, {0, 1000}} {
		if Embedding(table, 3, 2, ids) != nil {
			t.Errorf("ids %v accepted", ids)
		}
	}
	if Embedding(table, 2, 2, []int32{0}) != nil {
		t.Error("table size mismatch accepted")
	}
}
