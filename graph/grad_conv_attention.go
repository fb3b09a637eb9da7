package graph

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/graph/ref"
)

// Input gradients of conv2d and attention. NeTI trains only the mapper, so
// the gradient flows through the frozen UNet and text encoder to their
// inputs: conv2d needs dx alone, attention dq, dk and dv (q comes from the
// image tokens, k and v from the text contexts carrying the mapper's output).

// conv2dBwdInputOp computes dx [n,c,h,w] of the convolution fwd from dy
// [n,o,ho,wo] and its weight [o,c,kh,kw]. The forward op is a named field,
// not embedded, so that none of its methods (backward above all) is
// promoted to this op.
type conv2dBwdInputOp struct{ fwd conv2dOp }

func (conv2dBwdInputOp) Name() string { return "conv2d_bwd_input" }

// conv2dBackwardInput adds the input gradient of the convolution fwd given
// dy and the weight w.
func (b *Builder) conv2dBackwardInput(dy, w *Tensor, fwd conv2dOp) *Tensor {
	xShape := []int{fwd.n, fwd.c, fwd.h, fwd.w}
	if !b.check(dy, w) {
		return b.dummy(xShape)
	}
	if !sameShape(dy.shape, []int{fwd.n, fwd.o, fwd.ho, fwd.wo}) || !sameShape(w.shape, []int{fwd.o, fwd.c, fwd.kh, fwd.kw}) {
		b.Errorf("conv2d backward: gradient %s or weight %s does not fit input %s", shapeStr(dy.shape), shapeStr(w.shape), shapeStr(xShape))
		return b.dummy(xShape)
	}
	return b.add(conv2dBwdInputOp{fwd: fwd}, xShape, dy, w)
}

func (o conv2dBwdInputOp) eval(n *Node, in [][]float32) ([]float32, error) {
	f := o.fwd
	dx := ref.Conv2dBackwardInput(in[0], f.n, f.c, f.h, f.w, in[1], f.o, f.kh, f.kw, f.p)
	if dx == nil {
		return nil, fmt.Errorf("conv2d backward: sizes %+v rejected by the reference", f)
	}
	return dx, nil
}

func (o conv2dOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	out := make([]*Tensor, len(n.In))
	for i := 1; i < len(need); i++ {
		if need[i] {
			b.Errorf("conv2d weight gradients are not supported (frozen networks)")
			return out
		}
	}
	if need[0] {
		out[0] = b.conv2dBackwardInput(dy, n.In[1], o)
	}
	return out
}

// The attention backward runs in three passes, flash-attention-2 style, so
// that no nq x nk matrix is ever stored:
//
//   - stats: per query, the log-sum-exp L of its scaled scores (base 2, as
//     the kernels use exp2) and D = dO·O, the rowsum of P∘dP;
//   - q: per query block, dQ = scale Σ_j P_ij (dP_ij - D_i) k_j over the keys,
//     with P_ij = exp2(s_ij - L_i) recomputed from L (no running maximum);
//   - kv: per key block, dV = Σ_i P_ij dO_i and dK = scale Σ_i dS_ij q_i over
//     the queries. Both land in one flat output, dK then dV, which the
//     backward slices: an op has a single output, and computing them in two
//     passes would recompute both products.
//
// Each op holds the forward op as a named field (embedding would promote
// its backward); layout forces a thread layout (tests run the GPU layouts on
// a CPU device), the zero value picks one for the device.

type attnBwdStatsOp struct {
	fwd    attentionOp
	layout attnBwdLayout
}

type attnBwdQOp struct {
	fwd    attentionOp
	layout attnBwdLayout
}

type attnBwdKVOp struct {
	fwd    attentionOp
	layout attnBwdLayout
}

func (attnBwdStatsOp) Name() string { return "attention_bwd_stats" }
func (attnBwdQOp) Name() string     { return "attention_bwd_q" }
func (attnBwdKVOp) Name() string    { return "attention_bwd_kv" }

// attnStatsShape is the stats tensor: (L, D) per batch, head and query.
func attnStatsShape(o attentionOp) []int { return []int{o.batch, o.heads, o.nq, 2} }

// attnBackwardCheck validates the tensors of a backward pass against the
// forward op: each of ts must have the shape in want (see attnShapes).
func (b *Builder) attnBackwardCheck(ts []*Tensor, want [][]int) bool {
	if !b.check(ts...) {
		return false
	}
	for i, t := range ts {
		if !sameShape(t.shape, want[i]) {
			b.Errorf("attention backward: input %d is %s, the forward op needs %s", i, shapeStr(t.shape), shapeStr(want[i]))
			return false
		}
	}
	return true
}

// attnShapes are the shapes of q, k, v, the output (and its gradient) and
// the stats of the forward op o.
func attnShapes(o attentionOp) (q, k, v, out, stats []int) {
	return []int{o.batch, o.nq, o.heads * o.dh}, []int{o.batch, o.nk, o.heads * o.dh},
		[]int{o.batch, o.nk, o.heads * o.dhv}, []int{o.batch, o.nq, o.heads * o.dhv}, attnStatsShape(o)
}

// attnBackwardStats adds the stats pass from q, k, the forward output out
// and its gradient dout.
func (b *Builder) attnBackwardStats(o attentionOp, q, k, out, dout *Tensor, layout attnBwdLayout) *Tensor {
	qs, ks, _, os, ss := attnShapes(o)
	if !b.attnBackwardCheck([]*Tensor{q, k, out, dout}, [][]int{qs, ks, os, os}) {
		return b.dummy(ss)
	}
	return b.add(attnBwdStatsOp{o, layout}, ss, q, k, out, dout)
}

// attnBackwardQ adds the dq pass; stats is attnBackwardStats' result.
func (b *Builder) attnBackwardQ(o attentionOp, q, k, v, dout, stats *Tensor, layout attnBwdLayout) *Tensor {
	qs, ks, vs, os, ss := attnShapes(o)
	if !b.attnBackwardCheck([]*Tensor{q, k, v, dout, stats}, [][]int{qs, ks, vs, os, ss}) {
		return b.dummy(qs)
	}
	return b.add(attnBwdQOp{o, layout}, qs, q, k, v, dout, stats)
}

// attnBackwardKV adds the dk/dv pass: a flat tensor holding dk then dv.
func (b *Builder) attnBackwardKV(o attentionOp, q, k, v, dout, stats *Tensor, layout attnBwdLayout) *Tensor {
	shape := []int{o.batch * o.nk * o.heads * (o.dh + o.dhv)}
	qs, ks, vs, os, ss := attnShapes(o)
	if !b.attnBackwardCheck([]*Tensor{q, k, v, dout, stats}, [][]int{qs, ks, vs, os, ss}) {
		return b.dummy(shape)
	}
	return b.add(attnBwdKVOp{o, layout}, shape, q, k, v, dout, stats)
}

func (o attentionOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	q, k, v := n.In[0], n.In[1], n.In[2]
	out := make([]*Tensor, 3)
	stats := b.attnBackwardStats(o, q, k, n.Out, dy, attnBwdLayout{})
	if need[0] {
		out[0] = b.attnBackwardQ(o, q, k, v, dy, stats, attnBwdLayout{})
	}
	if need[1] || need[2] {
		kv := b.attnBackwardKV(o, q, k, v, dy, stats, attnBwdLayout{})
		nK := k.Numel()
		if need[1] {
			out[1] = b.Reshape(b.Slice(kv, 0, 0, nK), k.shape...)
		}
		if need[2] {
			out[2] = b.Reshape(b.Slice(kv, 0, nK, nK+v.Numel()), v.shape...)
		}
	}
	return out
}

// eval of the stats pass computes L in float64 from q and k (the base-2
// log-sum-exp of scale·q·k over the keys each query sees) and D from out
// and dout.
func (op attnBwdStatsOp) eval(n *Node, in [][]float32) ([]float32, error) {
	o := op.fwd
	q, k, out, dout := in[0], in[1], in[2], in[3]
	stats := make([]float32, o.batch*o.heads*o.nq*2)
	s := make([]float64, o.nk)
	hd, hdv := o.heads*o.dh, o.heads*o.dhv
	for b := 0; b < o.batch; b++ {
		for h := 0; h < o.heads; h++ {
			for i := 0; i < o.nq; i++ {
				keys := o.nk
				if o.causal {
					keys = min(o.nk, i+o.offset+1)
				}
				qr := q[(b*o.nq+i)*hd+h*o.dh:][:o.dh]
				m := math.Inf(-1)
				for j := 0; j < keys; j++ {
					kr := k[(b*o.nk+j)*hd+h*o.dh:][:o.dh]
					var dot float64
					for d, qv := range qr {
						dot += float64(qv) * float64(kr[d])
					}
					s[j] = dot * float64(o.scale)
					m = max(m, s[j])
				}
				var z float64
				for _, sj := range s[:keys] {
					z += math.Exp(sj - m)
				}
				var d float64
				base := (b*o.nq+i)*hdv + h*o.dhv
				for e := 0; e < o.dhv; e++ {
					d += float64(out[base+e]) * float64(dout[base+e])
				}
				idx := ((b*o.heads+h)*o.nq + i) * 2
				stats[idx] = float32((m + math.Log(z)) * math.Log2E)
				stats[idx+1] = float32(d)
			}
		}
	}
	return stats, nil
}

// The dq and dk/dv passes evaluate through the reference backward, which
// recomputes the probabilities itself: the stats input only matters on the
// GPU, and a wrong one shows up as a GPU/CPU mismatch of the gradients.
func (o attentionOp) refBackward(in [][]float32) (dq, dk, dv []float32, err error) {
	if o.offset > 0 {
		dq, dk, dv = ref.CausalAttentionBackward(in[0], in[1], in[2], in[3], o.batch, o.nq, o.nk, o.heads, o.dh, o.dhv, o.scale, o.offset)
	} else {
		dq, dk, dv = ref.AttentionBackward(in[0], in[1], in[2], in[3], o.batch, o.nq, o.nk, o.heads, o.dh, o.dhv, o.scale, o.causal)
	}
	if dq == nil {
		return nil, nil, nil, fmt.Errorf("attention backward: sizes rejected by the reference")
	}
	return dq, dk, dv, nil
}

func (o attnBwdQOp) eval(n *Node, in [][]float32) ([]float32, error) {
	dq, _, _, err := o.fwd.refBackward(in)
	return dq, err
}

func (o attnBwdKVOp) eval(n *Node, in [][]float32) ([]float32, error) {
	_, dk, dv, err := o.fwd.refBackward(in)
	if err != nil {
		return nil, err
	}
	return append(dk, dv...), nil
}
