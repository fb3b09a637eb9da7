package graph

import "github.com/neti-project/neti/graph/ref"

// Conv2dParams are a convolution's stride and zero padding (top, left,
// bottom, right: the VAE encoder pads only right and bottom).
type Conv2dParams = ref.Conv2dParams

// Pad returns stride-s parameters with the same padding p on every side.
func Pad(stride, p int) Conv2dParams {
	return Conv2dParams{StrideH: stride, StrideW: stride, PadTop: p, PadLeft: p, PadBottom: p, PadRight: p}
}

type conv2dOp struct {
	n, c, h, w, o, kh, kw, ho, wo int
	p                             Conv2dParams
	bias                          bool
}

func (conv2dOp) Name() string { return "conv2d" }

// conv2d.comp and conv2d_cpu.comp load x, the filter and the bias and store
// y through storage.glsl; they accumulate in fp32.
func (conv2dOp) halfIn(int) bool { return true }
func (conv2dOp) halfOut() bool   { return true }

// Conv2d convolves x [n, c, h, w] with w [o, c, kh, kw] (+ bias [o]) as an
// implicit GEMM: no im2col buffer is ever made.
func (b *Builder) Conv2d(x, w, bias *Tensor, p Conv2dParams) *Tensor {
	if !b.check(x, w) {
		return b.dummy([]int{1})
	}
	if x.Rank() != 4 || w.Rank() != 4 || w.Dim(1) != x.Dim(1) {
		b.Errorf("conv2d: input %s does not fit weight %s", shapeStr(x.shape), shapeStr(w.shape))
		return b.dummy([]int{1})
	}
	if p.StrideH <= 0 || p.StrideW <= 0 || p.PadTop < 0 || p.PadLeft < 0 || p.PadBottom < 0 || p.PadRight < 0 {
		b.Errorf("conv2d: bad stride/padding %+v", p)
		return b.dummy([]int{1})
	}
	op := conv2dOp{n: x.Dim(0), c: x.Dim(1), h: x.Dim(2), w: x.Dim(3), o: w.Dim(0), kh: w.Dim(2), kw: w.Dim(3), p: p}
	op.ho = (op.h+p.PadTop+p.PadBottom-op.kh)/p.StrideH + 1
	op.wo = (op.w+p.PadLeft+p.PadRight-op.kw)/p.StrideW + 1
	shape := []int{op.n, op.o, op.ho, op.wo}
	if op.ho <= 0 || op.wo <= 0 {
		b.Errorf("conv2d: kernel %dx%d larger than padded input %s", op.kh, op.kw, shapeStr(x.shape))
		return b.dummy([]int{1})
	}
	if bias != nil {
		if !b.check(bias) {
			return b.dummy(shape)
		}
		if bias.Numel() != op.o {
			b.Errorf("conv2d: bias %s for %d channels", shapeStr(bias.shape), op.o)
			return b.dummy(shape)
		}
		op.bias = true
		return b.add(op, shape, x, w, bias)
	}
	return b.add(op, shape, x, w)
}

func (o conv2dOp) eval(n *Node, in [][]float32) ([]float32, error) {
	var bias []float32
	if o.bias {
		bias = in[2]
	}
	y, _, _ := ref.Conv2d(in[0], o.n, o.c, o.h, o.w, in[1], o.o, o.kh, o.kw, bias, o.p)
	return y, nil
}
