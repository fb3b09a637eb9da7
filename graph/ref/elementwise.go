package ref

import "math"

// broadcastShape applies NumPy's rule: shapes are aligned on the right and
// each pair of dimensions must be equal or contain a 1.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da < 0 || db < 0:
			return nil, false
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	if _, ok := outLen(out...); !ok {
		return nil, false
	}
	return out, true
}

// broadcastStrides returns, for each output dimension, the step in the
// operand's data; 0 where the operand is broadcast.
func broadcastStrides(shape, out []int) []int {
	st := make([]int, len(out))
	step := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 {
			st[len(out)-len(shape)+i] = step
		}
		step *= shape[i]
	}
	return st
}

// binary applies op elementwise with broadcasting. It returns nil, nil when
// the shapes are incompatible or a buffer does not match its shape.
func binary(a []float32, aShape []int, b []float32, bShape []int, op func(x, y float64) float64) ([]float32, []int) {
	if !sized(a, aShape...) || !sized(b, bShape...) {
		return nil, nil
	}
	shape, ok := broadcastShape(aShape, bShape)
	if !ok {
		return nil, nil
	}
	size, _ := numel(shape...)
	out := make([]float32, size)
	sa, sb := broadcastStrides(aShape, shape), broadcastStrides(bShape, shape)
	idx := make([]int, len(shape))
	ia, ib := 0, 0
	for o := range out {
		out[o] = float32(op(float64(a[ia]), float64(b[ib])))
		// Odometer increment over the output index, moving both offsets.
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			ia += sa[d]
			ib += sb[d]
			if idx[d] < shape[d] {
				break
			}
			ia -= sa[d] * shape[d]
			ib -= sb[d] * shape[d]
			idx[d] = 0
		}
	}
	return out, shape
}

// Add is a + b with NumPy broadcasting; it returns the result and its shape,
// or nil, nil when the shapes are incompatible or do not match the data.
func Add(a []float32, aShape []int, b []float32, bShape []int) ([]float32, []int) {
	return binary(a, aShape, b, bShape, func(x, y float64) float64 { return x + y })
}

// Mul is a · b elementwise with NumPy broadcasting, like Add.
func Mul(a []float32, aShape []int, b []float32, bShape []int) ([]float32, []int) {
	return binary(a, aShape, b, bShape, func(x, y float64) float64 { return x * y })
}

// Scale is x · s.
func Scale(x []float32, s float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(float64(v) * float64(s))
	}
	return y
}

// Sum reduces the middle axis of x [outer,axis,inner] -> [outer,inner].
func Sum(x []float32, outer, axis, inner int) []float32 {
	return reduce(x, outer, axis, inner, 1)
}

// Mean averages the middle axis of x [outer,axis,inner] -> [outer,inner]; an
// empty axis gives NaN, as in PyTorch.
func Mean(x []float32, outer, axis, inner int) []float32 {
	return reduce(x, outer, axis, inner, 1/float64(axis))
}

func reduce(x []float32, outer, axis, inner int, f float64) []float32 {
	if !sized(x, outer, axis, inner) {
		return nil
	}
	if _, ok := outLen(outer, inner); !ok {
		return nil
	}
	acc := make([]float64, outer*inner)
	for o := 0; o < outer; o++ {
		dst := acc[o*inner : (o+1)*inner]
		for a := 0; a < axis; a++ {
			for i, v := range x[(o*axis+a)*inner:][:inner] {
				dst[i] += float64(v)
			}
		}
	}
	for i := range acc {
		acc[i] *= f
	}
	return round[float32](acc)
}

// MSE is mean((a-b)²), PyTorch's F.mse_loss with reduction "mean". It is NaN
// when the lengths differ or are zero.
func MSE(a, b []float32) float64 { return mse(a, b) }

func mse[T float](a, b []T) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return math.NaN()
	}
	var s float64
	for i, v := range a {
		d := float64(v) - float64(b[i])
		s += d * d
	}
	return s / float64(len(a))
}

// MSEBackward is d mean((a-b)²)/da = 2(a-b)/N (nil when the lengths differ).
func MSEBackward(a, b []float32) []float32 {
	if len(a) != len(b) {
		return nil
	}
	da := make([]float32, len(a))
	n := float64(len(a))
	for i, v := range a {
		da[i] = float32(2 * (float64(v) - float64(b[i])) / n)
	}
	return da
}

// PermuteShape is the shape of x after Permute: out[i] = shape[perm[i]]. It
// returns nil when perm is not a permutation of 0..len(shape)-1.
func PermuteShape(shape, perm []int) []int {
	if len(perm) != len(shape) {
		return nil
	}
	seen := make([]bool, len(perm))
	out := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			return nil
		}
		seen[p] = true
		out[i] = shape[p]
	}
	return out
}

// Permute is torch.permute(x, perm).contiguous() for x of the given shape:
// output axis i is input axis perm[i]. Nil on a bad perm or size mismatch.
func Permute(x []float32, shape []int, perm []int) []float32 { return permute(x, shape, perm) }

func permute[T any](x []T, shape []int, perm []int) []T {
	outShape := PermuteShape(shape, perm)
	if outShape == nil || !sized(x, shape...) {
		return nil
	}
	inStride := make([]int, len(shape))
	step := 1
	for i := len(shape) - 1; i >= 0; i-- {
		inStride[i] = step
		step *= shape[i]
	}
	st := make([]int, len(perm)) // input step per output axis
	for i, p := range perm {
		st[i] = inStride[p]
	}
	out := make([]T, len(x))
	idx := make([]int, len(outShape))
	off := 0
	for o := range out {
		out[o] = x[off]
		for d := len(outShape) - 1; d >= 0; d-- {
			idx[d]++
			off += st[d]
			if idx[d] < outShape[d] {
				break
			}
			off -= st[d] * outShape[d]
			idx[d] = 0
		}
	}
	return out
}

// Embedding gathers rows of table [vocab,d] for ids -> [len(ids),d]. It
// returns nil when an id is outside the table: the caller validates ids (a
// placeholder token, for instance, has no row and must be substituted first).
func Embedding(table []float32, vocab, d int, ids []int32) []float32 {
	if !sized(table, vocab, d) {
		return nil
	}
	if _, ok := outLen(len(ids), d); !ok {
		return nil
	}
	out := make([]float32, 0, len(ids)*d)
	for _, id := range ids {
		if id < 0 || int(id) >= vocab {
			return nil
		}
		out = append(out, table[int(id)*d:(int(id)+1)*d]...)
	}
	return out
}
