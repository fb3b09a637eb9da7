package graph

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/graph/ref"
)

// Act selects the function of the activation op (a specialization
// constant of shaders/activation.comp).
type Act int

// The activations of SD's networks and NeTI's mapper.
const (
	ActSiLU Act = iota
	ActGELU
	ActGELUTanh
	ActQuickGELU
	ActLeakyReLU
	ActScale // x * alpha, no nonlinearity
	ActSqrt
	ActRsqrt
	ActExp
	// Derivatives f'(x) of the activations above, for the backward pass.
	ActSiLUGrad
	ActGELUGrad
	ActGELUTanhGrad
	ActQuickGELUGrad
	ActLeakyReLUGrad
)

func (a Act) String() string {
	return [...]string{"silu", "gelu", "gelu_tanh", "quick_gelu", "leaky_relu", "scale", "sqrt", "rsqrt", "exp",
		"silu'", "gelu'", "gelu_tanh'", "quick_gelu'", "leaky_relu'"}[a]
}

type activationOp struct {
	act   Act
	alpha float32 // LeakyReLU slope, or the factor of ActScale
	n     int
}

func (activationOp) Name() string    { return "activation" }
func (activationOp) halfIn(int) bool { return true }
func (activationOp) halfOut() bool   { return true }

func (b *Builder) activation(x *Tensor, act Act, alpha float32) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	return b.add(activationOp{act: act, alpha: alpha, n: x.Numel()}, x.shape, x)
}

// SiLU is x*sigmoid(x).
func (b *Builder) SiLU(x *Tensor) *Tensor { return b.activation(x, ActSiLU, 0) }

// GELU is the exact (erf) GELU.
func (b *Builder) GELU(x *Tensor) *Tensor { return b.activation(x, ActGELU, 0) }

// GELUTanh is the tanh approximation of GELU.
func (b *Builder) GELUTanh(x *Tensor) *Tensor { return b.activation(x, ActGELUTanh, 0) }

// QuickGELU is x*sigmoid(1.702x) (CLIP).
func (b *Builder) QuickGELU(x *Tensor) *Tensor { return b.activation(x, ActQuickGELU, 0) }

// LeakyReLU is max(x, slope*x) (NeTI's mapper uses slope 0.01).
func (b *Builder) LeakyReLU(x *Tensor, slope float32) *Tensor {
	return b.activation(x, ActLeakyReLU, slope)
}

// Scale multiplies every element by s.
func (b *Builder) Scale(x *Tensor, s float32) *Tensor { return b.activation(x, ActScale, s) }

// Sqrt is the elementwise square root.
func (b *Builder) Sqrt(x *Tensor) *Tensor { return b.activation(x, ActSqrt, 0) }

// Rsqrt is 1/sqrt(x) elementwise.
func (b *Builder) Rsqrt(x *Tensor) *Tensor { return b.activation(x, ActRsqrt, 0) }

// Exp is the elementwise exponential.
func (b *Builder) Exp(x *Tensor) *Tensor { return b.activation(x, ActExp, 0) }

// Apply applies activation a (with its parameter alpha) elementwise; the
// backward pass uses it for the derivative modes.
func (b *Builder) Apply(x *Tensor, a Act, alpha float32) *Tensor { return b.activation(x, a, alpha) }

func (o activationOp) eval(n *Node, in [][]float32) ([]float32, error) {
	x := in[0]
	switch o.act {
	case ActSiLU:
		return ref.SiLU(x), nil
	case ActGELU:
		return ref.GELU(x), nil
	case ActGELUTanh:
		return ref.GELUTanh(x), nil
	case ActQuickGELU:
		return ref.QuickGELU(x), nil
	case ActLeakyReLU:
		return ref.LeakyReLU(x, o.alpha), nil
	case ActScale:
		return ref.Scale(x, o.alpha), nil
	case ActLeakyReLUGrad:
		return ref.LeakyReLUBackward(x, ones(len(x)), o.alpha), nil
	}
	if f, ok := scalarActs[o.act]; ok {
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = float32(f(float64(v)))
		}
		return out, nil
	}
	if f, ok := gradActs[o.act]; ok {
		return f(x, ones(len(x))), nil
	}
	return nil, fmt.Errorf("unknown activation %d", o.act)
}

// BinaryKind selects the function of the binary op.
type BinaryKind int

// Binary ops with numpy broadcasting.
const (
	BinAdd BinaryKind = iota
	BinMul
	BinSub
	BinDiv
)

type binaryOp struct {
	kind           BinaryKind
	out            []int
	aShape, bShape []int // right-aligned to len(out), 1 where broadcast
}

func (binaryOp) Name() string    { return "binary" }
func (binaryOp) halfIn(int) bool { return true }
func (binaryOp) halfOut() bool   { return true }

func broadcastShapes(a, b []int) ([]int, []int, []int, bool) {
	n := max(len(a), len(b))
	pa, pb, out := make([]int, n), make([]int, n), make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		pa[i], pb[i] = da, db
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, nil, nil, false
		}
	}
	return out, pa, pb, true
}

func (b *Builder) binary(kind BinaryKind, x, y *Tensor) *Tensor {
	if !b.check(x, y) {
		return b.dummy([]int{1})
	}
	out, pa, pb, ok := broadcastShapes(x.shape, y.shape)
	if !ok {
		b.Errorf("binary: shapes %s and %s do not broadcast", shapeStr(x.shape), shapeStr(y.shape))
		return b.dummy(x.shape)
	}
	if len(out) > maxBroadcastRank {
		b.Errorf("binary: rank %d exceeds %d", len(out), maxBroadcastRank)
		return b.dummy(out)
	}
	return b.add(binaryOp{kind: kind, out: out, aShape: pa, bShape: pb}, out, x, y)
}

const maxBroadcastRank = 6

// Add is x + y with numpy broadcasting.
func (b *Builder) Add(x, y *Tensor) *Tensor { return b.binary(BinAdd, x, y) }

// Mul is x * y with numpy broadcasting.
func (b *Builder) Mul(x, y *Tensor) *Tensor { return b.binary(BinMul, x, y) }

// Sub is x - y with numpy broadcasting.
func (b *Builder) Sub(x, y *Tensor) *Tensor { return b.binary(BinSub, x, y) }

// Div is x / y with numpy broadcasting.
func (b *Builder) Div(x, y *Tensor) *Tensor { return b.binary(BinDiv, x, y) }

func (o binaryOp) eval(n *Node, in [][]float32) ([]float32, error) {
	switch o.kind {
	case BinAdd:
		y, _ := ref.Add(in[0], o.aShape, in[1], o.bShape)
		return y, nil
	case BinMul:
		y, _ := ref.Mul(in[0], o.aShape, in[1], o.bShape)
		return y, nil
	case BinSub:
		neg := ref.Scale(in[1], -1)
		y, _ := ref.Add(in[0], o.aShape, neg, o.bShape)
		return y, nil
	case BinDiv:
		inv := make([]float32, len(in[1]))
		for i, v := range in[1] {
			inv[i] = float32(1 / float64(v))
		}
		y, _ := ref.Mul(in[0], o.aShape, inv, o.bShape)
		return y, nil
	}
	return nil, fmt.Errorf("unknown binary op %d", o.kind)
}

type gegluOp struct{ rows, f int }

func (gegluOp) Name() string    { return "geglu" }
func (gegluOp) halfIn(int) bool { return true }
func (gegluOp) halfOut() bool   { return true }

// GEGLU splits the last dimension of x [..., 2f] into (h, g) and returns
// h * gelu(g) [..., f] (diffusers' FeedForward).
func (b *Builder) GEGLU(x *Tensor) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	if x.Dim(-1)%2 != 0 {
		b.Errorf("geglu: odd last dimension in %s", shapeStr(x.shape))
		return b.dummy(x.shape)
	}
	f := x.Dim(-1) / 2
	shape := append(x.Shape()[:x.Rank()-1], f)
	return b.add(gegluOp{rows: x.Numel() / (2 * f), f: f}, shape, x)
}

func (o gegluOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.GEGLU(in[0], o.rows, o.f), nil
}

type softmaxOp struct{ rows, d int }

func (softmaxOp) Name() string    { return "softmax" }
func (softmaxOp) halfIn(int) bool { return true } // the row max and sum stay fp32 in registers and shared memory
func (softmaxOp) halfOut() bool   { return true }

// Softmax normalises over the last dimension.
func (b *Builder) Softmax(x *Tensor) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	return b.add(softmaxOp{rows: x.Numel() / x.Dim(-1), d: x.Dim(-1)}, x.shape, x)
}

func (o softmaxOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.Softmax(in[0], o.rows, o.d), nil
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// scalarActs are the activations without a graph/ref function of their own.
var scalarActs = map[Act]func(float64) float64{
	ActSqrt:  math.Sqrt,
	ActRsqrt: func(v float64) float64 { return 1 / math.Sqrt(v) },
	ActExp:   math.Exp,
}

// gradActs evaluate f'(x) through the ref backward functions with dy = 1.
var gradActs = map[Act]func(x, dy []float32) []float32{
	ActSiLUGrad:      ref.SiLUBackward,
	ActGELUGrad:      ref.GELUBackward,
	ActGELUTanhGrad:  ref.GELUTanhBackward,
	ActQuickGELUGrad: ref.QuickGELUBackward,
}
