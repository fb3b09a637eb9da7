package ref

import "math"

// Scalar forms in float64, shared by the forward and backward functions.

func silu(x float64) float64 { return x * sigmoid(x) }

func siluGrad(x float64) float64 {
	s := sigmoid(x)
	return s * (1 + x*(1-s))
}

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

func geluGrad(x float64) float64 {
	cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
	pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
	return cdf + x*pdf
}

// geluTanhC is sqrt(2/π); 0.044715 is the constant of the tanh approximation
// (PyTorch's approximate="tanh").
var geluTanhC = math.Sqrt(2 / math.Pi)

func geluTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(geluTanhC*(x+0.044715*x*x*x)))
}

func geluTanhGrad(x float64) float64 {
	t := math.Tanh(geluTanhC * (x + 0.044715*x*x*x))
	return 0.5*(1+t) + 0.5*x*(1-t*t)*geluTanhC*(1+3*0.044715*x*x)
}

func quickGELU(x float64) float64 { return x * sigmoid(1.702*x) }

func quickGELUGrad(x float64) float64 {
	s := sigmoid(1.702 * x)
	return s + 1.702*x*s*(1-s)
}

func unary[T float](x []T, f func(float64) float64) []T {
	y := make([]T, len(x))
	for i, v := range x {
		y[i] = T(f(float64(v)))
	}
	return y
}

// unaryGrad is dy·f'(x); nil when the lengths differ.
func unaryGrad[T float](x, dy []T, df func(float64) float64) []T {
	if len(x) != len(dy) {
		return nil
	}
	dx := make([]T, len(x))
	for i, v := range x {
		dx[i] = T(float64(dy[i]) * df(float64(v)))
	}
	return dx
}

// SiLU is x·sigmoid(x).
func SiLU(x []float32) []float32 { return unary(x, silu) }

// GELU is the exact form x·Φ(x) = x/2·(1+erf(x/√2)), PyTorch's default and
// what diffusers' GEGLU uses.
func GELU(x []float32) []float32 { return unary(x, gelu) }

// GELUTanh is PyTorch's gelu(approximate="tanh").
func GELUTanh(x []float32) []float32 { return unary(x, geluTanh) }

// QuickGELU is CLIP's x·sigmoid(1.702x).
func QuickGELU(x []float32) []float32 { return unary(x, quickGELU) }

// LeakyReLU is x for x > 0 and slope·x otherwise (NeTI's mapper uses 0.01).
func LeakyReLU(x []float32, slope float32) []float32 { return leakyReLU(x, slope) }

func leakyReLU[T float](x []T, slope float32) []T {
	s := float64(slope)
	return unary(x, func(v float64) float64 {
		if v > 0 {
			return v
		}
		return v * s
	})
}

// SiLUBackward returns dy·SiLU'(x).
func SiLUBackward(x, dy []float32) []float32 { return unaryGrad(x, dy, siluGrad) }

// GELUBackward returns dy·GELU'(x) for the exact GELU.
func GELUBackward(x, dy []float32) []float32 { return unaryGrad(x, dy, geluGrad) }

// GELUTanhBackward returns dy·GELUTanh'(x).
func GELUTanhBackward(x, dy []float32) []float32 { return unaryGrad(x, dy, geluTanhGrad) }

// QuickGELUBackward returns dy·QuickGELU'(x).
func QuickGELUBackward(x, dy []float32) []float32 { return unaryGrad(x, dy, quickGELUGrad) }

// LeakyReLUBackward returns dy where x > 0 and slope·dy elsewhere (PyTorch
// takes the slope branch at exactly 0).
func LeakyReLUBackward(x, dy []float32, slope float32) []float32 {
	s := float64(slope)
	return unaryGrad(x, dy, func(v float64) float64 {
		if v > 0 {
			return 1
		}
		return s
	})
}

// GEGLU is diffusers' GEGLU after its projection: x [rows,2f] is chunked
// into hidden = x[:, :f] and gate = x[:, f:], and the result [rows,f] is
// hidden·GELU(gate) (exact GELU).
func GEGLU(x []float32, rows, f int) []float32 { return geglu(x, rows, f) }

func geglu[T float](x []T, rows, f int) []T {
	if !sized(x, rows, 2, f) {
		return nil
	}
	y := make([]T, rows*f)
	for r := 0; r < rows; r++ {
		h, g := x[2*r*f:], x[(2*r+1)*f:]
		for j := 0; j < f; j++ {
			y[r*f+j] = T(float64(h[j]) * gelu(float64(g[j])))
		}
	}
	return y
}

// GEGLUBackward returns dx [rows,2f] for GEGLU's upstream gradient dy
// [rows,f]: the hidden half gets dy·GELU(gate), the gate half
// dy·hidden·GELU'(gate).
func GEGLUBackward(x, dy []float32, rows, f int) []float32 { return gegluBackward(x, dy, rows, f) }

func gegluBackward[T float](x, dy []T, rows, f int) []T {
	if !sized(x, rows, 2, f) || !sized(dy, rows, f) {
		return nil
	}
	dx := make([]T, len(x))
	for r := 0; r < rows; r++ {
		h, g := x[2*r*f:], x[(2*r+1)*f:]
		dh, dg := dx[2*r*f:], dx[(2*r+1)*f:]
		for j := 0; j < f; j++ {
			gy, hv, gv := float64(dy[r*f+j]), float64(h[j]), float64(g[j])
			dh[j] = T(gy * gelu(gv))
			dg[j] = T(gy * hv * geluGrad(gv))
		}
	}
	return dx
}
