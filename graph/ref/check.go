package ref

import "math"

// float is the element type of the generic kernels: float32 for the public
// API, float64 for finite-difference checks in tests.
type float interface{ ~float32 | ~float64 }

// numel is the product of dims; false when a dim is negative or the product
// overflows int, so that a hostile shape can never drive an allocation.
func numel(dims ...int) (int, bool) {
	p := 1
	for _, d := range dims {
		if d < 0 {
			return 0, false
		}
		if d != 0 && p > math.MaxInt/d {
			return 0, false
		}
		p *= d
	}
	return p, true
}

// maxElems bounds every output, and the number of attention scores: these
// are references for tests, so a mistaken dimension (a huge pad, k = 0 with
// a huge m·n) is refused instead of exhausting memory or time. 2^30 float32
// values are 4 GiB, far above any model these tests run.
const maxElems = 1 << 30

// outLen is numel for a result that will be allocated or iterated over.
func outLen(dims ...int) (int, bool) {
	n, ok := numel(dims...)
	return n, ok && n <= maxElems
}

// sized reports whether x holds exactly the product of dims elements.
func sized[T any](x []T, dims ...int) bool {
	n, ok := numel(dims...)
	return ok && len(x) == n
}

// optSized accepts a nil optional parameter (bias, gamma, beta).
func optSized[T any](x []T, n int) bool { return x == nil || len(x) == n }

func round[T float](acc []float64) []T {
	out := make([]T, len(acc))
	for i, v := range acc {
		out[i] = T(v)
	}
	return out
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
