package graph

import (
	"math"

	"github.com/neti-project/neti/graph/ref"
)

type attentionOp struct {
	batch, nq, nk, heads, dh, dhv int
	scale                         float32
	causal                        bool
	offset                        int // causal: query i sees keys j <= i+offset
}

func (attentionOp) Name() string    { return "attention" }
func (attentionOp) halfIn(int) bool { return true } // q, k, v; the running max and sum stay fp32 in registers
func (attentionOp) halfOut() bool   { return true }

// Attention is fused scaled-dot-product attention with online softmax: the
// nq x nk score matrix is never stored. q is [batch, nq, heads*dh]; k and v
// are [batch, nk, heads*dh] and [batch, nk, heads*dhv] and may come from
// different tensors (NeTI feeds values from the bypass encoding). scale 0
// means 1/sqrt(dh); causal lets query i see keys j <= i (CLIP).
func (b *Builder) Attention(q, k, v *Tensor, heads int, scale float32, causal bool) *Tensor {
	return b.attention(q, k, v, heads, scale, causal, 0)
}

// CausalAttention is Attention with a causal mask shifted by offset: the
// queries are the last nq of nk = offset + nq positions and query i sees
// keys j <= offset+i. A causal encoder (CLIP) can then compute a prompt's
// suffix alone against the keys and values of a prefix computed once, with
// the same result as the whole sequence; offset 0 is Attention with causal
// set.
func (b *Builder) CausalAttention(q, k, v *Tensor, heads int, scale float32, offset int) *Tensor {
	if b.check(q, k) && q.Rank() == 3 && k.Rank() == 3 && (offset < 0 || k.Dim(1) != q.Dim(1)+offset) {
		b.Errorf("attention: causal offset %d needs %d keys for %d queries, got %d", offset, q.Dim(1)+offset, q.Dim(1), k.Dim(1))
		return b.dummy([]int{1})
	}
	return b.attention(q, k, v, heads, scale, true, offset)
}

func (b *Builder) attention(q, k, v *Tensor, heads int, scale float32, causal bool, offset int) *Tensor {
	if !b.check(q, k, v) {
		return b.dummy([]int{1})
	}
	if q.Rank() != 3 || k.Rank() != 3 || v.Rank() != 3 || heads <= 0 {
		b.Errorf("attention: want rank-3 q, k, v, got %s %s %s", shapeStr(q.shape), shapeStr(k.shape), shapeStr(v.shape))
		return b.dummy([]int{1})
	}
	batch, nq, nk := q.Dim(0), q.Dim(1), k.Dim(1)
	if k.Dim(0) != batch || v.Dim(0) != batch || v.Dim(1) != nk || q.Dim(2) != k.Dim(2) ||
		q.Dim(2)%heads != 0 || v.Dim(2)%heads != 0 {
		b.Errorf("attention: q %s, k %s, v %s do not fit %d heads", shapeStr(q.shape), shapeStr(k.shape), shapeStr(v.shape), heads)
		return b.dummy([]int{1})
	}
	dh, dhv := q.Dim(2)/heads, v.Dim(2)/heads
	if dh > MaxHeadDim || dhv > MaxHeadDim {
		b.Errorf("attention: head dim %d exceeds the %d the kernel supports", max(dh, dhv), MaxHeadDim)
		return b.dummy([]int{1})
	}
	if causal && nq+offset != nk {
		b.Errorf("attention: causal mask needs nq == nk, got %d and %d", nq, nk)
		return b.dummy([]int{1})
	}
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(dh)))
	}
	op := attentionOp{batch: batch, nq: nq, nk: nk, heads: heads, dh: dh, dhv: dhv, scale: scale, causal: causal, offset: offset}
	return b.add(op, []int{batch, nq, heads * dhv}, q, k, v)
}

// MaxHeadDim bounds the per-thread accumulators of the attention kernel
// (SD uses 40, 80 and 160).
const MaxHeadDim = 160

func (o attentionOp) eval(n *Node, in [][]float32) ([]float32, error) {
	if o.offset > 0 {
		return ref.CausalAttention(in[0], in[1], in[2], o.batch, o.nq, o.nk, o.heads, o.dh, o.dhv, o.scale, o.offset), nil
	}
	return ref.Attention(in[0], in[1], in[2], o.batch, o.nq, o.nk, o.heads, o.dh, o.dhv, o.scale, o.causal), nil
}

// maskPush is the shaders' causal push constant: 0 without the mask, else
// 1 + the offset, so that query i sees keys j < i + causal (one field keeps
// the push layouts and the pipelines of the plain mask unchanged).
func (o attentionOp) maskPush() uint32 {
	if !o.causal {
		return 0
	}
	return uint32(1 + o.offset)
}
