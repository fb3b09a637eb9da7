package graph

import "github.com/neti-project/neti/graph/ref"

type groupNormOp struct {
	n, c, hw, groups int
	eps              float32
	silu             bool
}

func (groupNormOp) Name() string    { return "groupnorm" }
func (groupNormOp) halfIn(int) bool { return true } // x, gamma, beta; the chunk statistics are fp32 scratch
func (groupNormOp) halfOut() bool   { return true }

// GroupNorm normalises x [n, c, ...] over groups of channels with affine
// gamma/beta [c]; silu fuses the activation that follows most SD norms.
func (b *Builder) GroupNorm(x, gamma, beta *Tensor, groups int, eps float32, silu bool) *Tensor {
	if !b.check(x, gamma, beta) {
		return b.dummy([]int{1})
	}
	if x.Rank() < 2 || groups <= 0 || x.Dim(1)%groups != 0 {
		b.Errorf("groupnorm: %d groups do not divide the channels of %s", groups, shapeStr(x.shape))
		return b.dummy(x.shape)
	}
	c := x.Dim(1)
	if gamma.Numel() != c || beta.Numel() != c {
		b.Errorf("groupnorm: gamma %s / beta %s for %d channels", shapeStr(gamma.shape), shapeStr(beta.shape), c)
		return b.dummy(x.shape)
	}
	op := groupNormOp{n: x.Dim(0), c: c, hw: x.Numel() / (x.Dim(0) * c), groups: groups, eps: eps, silu: silu}
	return b.add(op, x.shape, x, gamma, beta)
}

func (o groupNormOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.GroupNorm(in[0], o.n, o.c, o.hw, o.groups, in[1], in[2], o.eps, o.silu), nil
}

type layerNormOp struct {
	rows, d int
	eps     float32
}

func (layerNormOp) Name() string    { return "layernorm" }
func (layerNormOp) halfIn(int) bool { return true } // mean and variance stay fp32 in shared memory
func (layerNormOp) halfOut() bool   { return true }

// LayerNorm normalises over the last dimension with affine gamma/beta.
func (b *Builder) LayerNorm(x, gamma, beta *Tensor, eps float32) *Tensor {
	if !b.check(x, gamma, beta) {
		return b.dummy([]int{1})
	}
	d := x.Dim(-1)
	if gamma.Numel() != d || beta.Numel() != d {
		b.Errorf("layernorm: gamma %s / beta %s for width %d", shapeStr(gamma.shape), shapeStr(beta.shape), d)
		return b.dummy(x.shape)
	}
	return b.add(layerNormOp{rows: x.Numel() / d, d: d, eps: eps}, x.shape, x, gamma, beta)
}

func (o layerNormOp) eval(n *Node, in [][]float32) ([]float32, error) {
	return ref.LayerNorm(in[0], o.rows, o.d, in[1], in[2], o.eps), nil
}
