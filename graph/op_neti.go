package graph

import (
	"math"

	"github.com/neti-project/neti/graph/ref"
)

// Ops of NeTI's mapper and textual bypass.

type fourierOp struct{ n, numW int }

func (fourierOp) Name() string { return "fourier" }

// Fourier is NeTI's random Fourier positional encoding: for rows of t [n]
// and layer [n] and the matrix w [numW, 2], z = w·(t, layer) and the output
// [n, 2*numW] is [sin z, cos z] divided by its L2 norm.
func (b *Builder) Fourier(t, layer, w *Tensor) *Tensor {
	if !b.check(t, layer, w) {
		return b.dummy([]int{1})
	}
	if t.Rank() != 1 || !sameShape(t.shape, layer.shape) || w.Rank() != 2 || w.Dim(1) != 2 {
		b.Errorf("fourier: t %s, layer %s, w %s (want [n], [n], [numW 2])", shapeStr(t.shape), shapeStr(layer.shape), shapeStr(w.shape))
		return b.dummy([]int{1})
	}
	op := fourierOp{n: t.Dim(0), numW: w.Dim(0)}
	return b.add(op, []int{op.n, 2 * op.numW}, t, layer, w)
}

func (o fourierOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.FourierFeatures(in[2], o.numW, in[0], in[1]), nil
}

func (o fourierOp) record(r *recorder, n *Node) error {
	return r.dispatch("fourier", nil, []uint32{uint32(o.n), uint32(o.numW)}, r.grid(o.n), n.In, []*Tensor{n.Out})
}

type l2normOp struct {
	rows, d int
	scale   float32
}

func (l2normOp) Name() string { return "l2norm" }

// L2Normalize rescales each row (last dimension) to L2 norm scale:
// x / max(||x||, 1e-12) * scale (NeTI normalises its whole mapper output to
// the super-category token's norm).
func (b *Builder) L2Normalize(x *Tensor, scale float32) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	d := x.Dim(-1)
	return b.add(l2normOp{rows: x.Numel() / d, d: d, scale: scale}, x.shape, x)
}

func (o l2normOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.L2NormalizeScale(in[0], o.rows, o.d, o.scale), nil
}

func (o l2normOp) record(r *recorder, n *Node) error {
	push := []uint32{uint32(o.rows), uint32(o.d), f32(o.scale), 0}
	return r.dispatch("l2norm", nil, push, r.grid(o.rows), n.In, []*Tensor{n.Out})
}

type rowNormOp struct{ rows, d int }

func (rowNormOp) Name() string { return "l2norm" }

// RowNorm is the L2 norm of each row over the last dimension, [..., 1]
// (the |h| of NeTI's bypass h + alpha*|h|*v/|v|). It shares the l2norm
// shader.
func (b *Builder) RowNorm(x *Tensor) *Tensor {
	if !b.check(x) {
		return b.dummy([]int{1})
	}
	d := x.Dim(-1)
	shape := append(x.Shape()[:x.Rank()-1], 1)
	return b.add(rowNormOp{rows: x.Numel() / d, d: d}, shape, x)
}

func (o rowNormOp) eval(n *Node, in [][]float32) ([]float32, error) {
	out := make([]float32, o.rows)
	for r := range out {
		var s float64
		for _, v := range in[0][r*o.d : (r+1)*o.d] {
			s += float64(v) * float64(v)
		}
		out[r] = float32(math.Sqrt(s))
	}
	return out, nil
}

func (o rowNormOp) record(r *recorder, n *Node) error {
	push := []uint32{uint32(o.rows), uint32(o.d), f32(1), 1}
	return r.dispatch("l2norm", nil, push, r.grid(o.rows), n.In, []*Tensor{n.Out})
}
