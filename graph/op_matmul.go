package graph

import "github.com/neti-project/neti/graph/ref"

// matmulOp is a batched matrix product with optional transposes, an optional
// bias added to every row of the result (Linear), and a B operand shared by
// the whole batch (weights).
type matmulOp struct {
	batch, m, n, k   int
	transA, transB   bool
	broadcastB, bias bool
}

func (matmulOp) Name() string    { return "matmul" }
func (matmulOp) halfIn(int) bool { return true }
func (matmulOp) halfOut() bool   { return true }

// MatMul multiplies a [batch, m, k] by b [batch, k, n] (or b [k, n] shared
// by every batch item). transA/transB read a as [batch, k, m] and b as
// [batch, n, k]. Rank-2 operands are a batch of one.
func (b *Builder) MatMul(a, bm *Tensor, transA, transB bool) *Tensor {
	if !b.check(a, bm) {
		return b.dummy([]int{1})
	}
	if a.Rank() < 2 || a.Rank() > 3 || bm.Rank() < 2 || bm.Rank() > 3 {
		b.Errorf("matmul: operands must be rank 2 or 3, got %s and %s", shapeStr(a.shape), shapeStr(bm.shape))
		return b.dummy([]int{1})
	}
	batch := 1
	if a.Rank() == 3 {
		batch = a.Dim(0)
	}
	m, k := a.Dim(-2), a.Dim(-1)
	if transA {
		m, k = k, m
	}
	kb, n := bm.Dim(-2), bm.Dim(-1)
	if transB {
		kb, n = n, kb
	}
	broadcast := bm.Rank() == 2 || bm.Dim(0) == 1 && batch > 1
	if bm.Rank() == 3 && !broadcast && bm.Dim(0) != batch {
		b.Errorf("matmul: batch %d vs %d (%s x %s)", batch, bm.Dim(0), shapeStr(a.shape), shapeStr(bm.shape))
		return b.dummy([]int{batch, m, n})
	}
	if kb != k {
		b.Errorf("matmul: inner dimensions %d and %d differ (%s x %s, transA=%v transB=%v)", k, kb, shapeStr(a.shape), shapeStr(bm.shape), transA, transB)
		return b.dummy([]int{batch, m, n})
	}
	shape := []int{batch, m, n}
	if a.Rank() == 2 {
		shape = []int{m, n}
	}
	return b.add(matmulOp{batch: batch, m: m, n: n, k: k, transA: transA, transB: transB, broadcastB: broadcast}, shape, a, bm)
}

// Linear applies x·wᵀ + bias over the last dimension of x (PyTorch layout:
// w is [out, in]); bias may be nil. Any leading dimensions are rows.
func (b *Builder) Linear(x, w, bias *Tensor) *Tensor {
	if !b.check(x, w) {
		return b.dummy([]int{1})
	}
	in := x.Dim(-1)
	if w.Rank() != 2 || w.Dim(1) != in {
		b.Errorf("linear: input %s does not fit weight %s", shapeStr(x.shape), shapeStr(w.shape))
		return b.dummy([]int{1})
	}
	out := w.Dim(0)
	shape := append(x.Shape()[:x.Rank()-1], out)
	op := matmulOp{batch: 1, m: x.Numel() / in, n: out, k: in, transB: true, broadcastB: true}
	if bias != nil {
		if !b.check(bias) {
			return b.dummy(shape)
		}
		if bias.Numel() != out {
			b.Errorf("linear: bias %s for %d outputs", shapeStr(bias.shape), out)
			return b.dummy(shape)
		}
		op.bias = true
		return b.add(op, shape, x, w, bias)
	}
	return b.add(op, shape, x, w)
}

func (o matmulOp) eval(n *Node, in [][]float32) ([]float32, error) {
	y := ref.MatMul(in[0], in[1], o.batch, o.m, o.n, o.k, o.transA, o.transB, o.broadcastB)
	if o.bias {
		bias := in[2]
		for i := range y {
			y[i] += bias[i%o.n]
		}
	}
	return y, nil
}
