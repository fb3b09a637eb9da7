package graph

// Reverse-mode gradients. Grad appends the backward pass to the same
// Builder, so the executor plans the activations kept for backward with
// everything else (liveness decides what stays alive) and one program runs
// forward and backward in one submit.
//
// With SetCheckpointing(true), the forward ops of checkpoint segments are
// recomputed for their backward instead of being kept (checkpoint.go).
//
// Only what the requested gradients need is computed: a node gets a
// backward only if one of its inputs depends on a tensor in wrt, and an
// input's gradient only if that input does. Frozen networks (weights not in
// wrt) therefore get input gradients but never weight gradients.

// backwarder is implemented by ops that propagate gradients.
type backwarder interface {
	// backward returns, for each input i with need[i], the gradient of the
	// loss with respect to that input, given dy for the output.
	backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor
}

// Grad returns d(sum(loss * seed))/d(w) for each w in wrt. seed may be nil
// for a one-element loss (the gradient of the loss itself). A tensor in wrt
// that the loss does not depend on gets a zero gradient.
func (b *Builder) Grad(loss, seed *Tensor, wrt ...*Tensor) []*Tensor {
	if !b.check(append([]*Tensor{loss}, wrt...)...) {
		return make([]*Tensor, len(wrt))
	}
	if seed == nil {
		if loss.Numel() != 1 {
			b.Errorf("grad: loss %s is not a scalar and no seed was given", shapeStr(loss.shape))
			return make([]*Tensor, len(wrt))
		}
		seed = b.Const([]float32{1}, loss.shape...)
	} else if !b.check(seed) || !sameShape(seed.shape, loss.shape) {
		b.Errorf("grad: seed %s for loss %s", shapeStr(seed.shape), shapeStr(loss.shape))
		return make([]*Tensor, len(wrt))
	}
	// requires[id]: the tensor depends on some wrt tensor.
	requires := make([]bool, len(b.tensors))
	for _, w := range wrt {
		requires[w.id] = true
	}
	views := map[int][]*Tensor{}
	for _, t := range b.tensors {
		if t.view != nil {
			views[t.view.id] = append(views[t.view.id], t)
		}
	}
	// Views are created in order after their source, so one pass in id
	// order settles views and nodes alike (a node's output id is larger than
	// its inputs' ids).
	nodeOf := map[int]*Node{}
	for _, n := range b.nodes {
		nodeOf[n.Out.id] = n
	}
	for _, t := range b.tensors {
		if t.view != nil && requires[t.view.id] {
			requires[t.id] = true
		}
		if n := nodeOf[t.id]; n != nil {
			for _, in := range n.In {
				if requires[in.id] {
					requires[t.id] = true
				}
			}
		}
	}
	grads := map[int]*Tensor{}
	accumulate := func(t, g *Tensor) {
		if g == nil {
			return
		}
		if !sameShape(g.shape, t.shape) {
			b.Errorf("grad: gradient %s for tensor %s", shapeStr(g.shape), shapeStr(t.shape))
			return
		}
		if prev, ok := grads[t.id]; ok {
			grads[t.id] = b.Add(prev, g)
		} else {
			grads[t.id] = g
		}
	}
	// total gathers a tensor's gradient including what reached its views.
	var total func(t *Tensor) *Tensor
	total = func(t *Tensor) *Tensor {
		g := grads[t.id]
		for _, v := range views[t.id] {
			if gv := total(v); gv != nil {
				r := b.Reshape(gv, t.shape...)
				if g == nil {
					g = r
				} else {
					g = b.Add(g, r)
				}
			}
		}
		return g
	}
	accumulate(loss, seed)
	nodes := b.nodes // the backward pass appends nodes; walk only the forward ones
	var rc *recomputer
	if b.checkpointing {
		rc = newRecomputer(b, nodes)
	}
	// Backward nodes belong to no segment even when Grad is called inside
	// one: only forward ops are recomputed.
	openSegments := b.segments
	b.segments = nil
	defer func() { b.segments = openSegments }()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if !requires[n.Out.id] {
			continue
		}
		dy := total(n.Out)
		if dy == nil {
			continue
		}
		need := make([]bool, len(n.In))
		any := false
		for j, in := range n.In {
			need[j] = requires[in.id]
			any = any || need[j]
		}
		if !any {
			continue
		}
		bw, ok := n.Op.(backwarder)
		if !ok {
			b.Errorf("grad: %s has no backward pass", n.describe())
			return make([]*Tensor, len(wrt))
		}
		fwd := n
		if rc != nil {
			fwd = rc.node(n)
		}
		restore := b.scope
		if n.Scope != "" {
			b.scope = []string{"grad(" + n.Scope + ")"}
		}
		gs := bw.backward(b, fwd, dy, need)
		b.scope = restore
		for j, in := range n.In {
			if need[j] {
				if j >= len(gs) || gs[j] == nil {
					b.Errorf("grad: %s gave no gradient for input %d", n.describe(), j)
					continue
				}
				accumulate(in, gs[j])
			}
		}
	}
	out := make([]*Tensor, len(wrt))
	for i, w := range wrt {
		g := total(w)
		if g == nil {
			g = b.Const(make([]float32, w.Numel()), w.shape...)
		}
		out[i] = g
	}
	if rc != nil {
		rc.prune(out)
	}
	return out
}

// sumTo reduces g (the output shape of a broadcasting op) to shape, summing
// over the broadcast dimensions.
func (b *Builder) sumTo(g *Tensor, shape []int) *Tensor {
	if sameShape(g.shape, shape) {
		return g
	}
	off := g.Rank() - len(shape)
	if off < 0 {
		b.Errorf("grad: cannot reduce %s to %s", shapeStr(g.shape), shapeStr(shape))
		return g
	}
	// Sum the axes from the last to the first so earlier indices stay valid.
	for ax := g.Rank() - 1; ax >= 0; ax-- {
		if ax < off || shape[ax-off] == 1 && g.shape[ax] != 1 {
			g = b.Sum(g, ax)
			if ax >= off {
				// Sum drops the axis; put the 1 back.
				s := g.Shape()
				s = append(s[:ax], append([]int{1}, s[ax:]...)...)
				g = b.Reshape(g, s...)
			}
		}
	}
	return b.Reshape(g, shape...)
}

// broadcastTo expands g to shape (numpy broadcasting) by adding a zero
// tensor that is 1 wherever g already has the size, so the constant stays
// as small as the broadcast dimensions.
func (b *Builder) broadcastTo(g *Tensor, shape []int) *Tensor {
	if sameShape(g.shape, shape) {
		return g
	}
	off := len(shape) - g.Rank()
	zs := make([]int, len(shape))
	for i := range shape {
		zs[i] = shape[i]
		if i >= off && g.shape[i-off] == shape[i] {
			zs[i] = 1
		}
	}
	return b.Add(g, b.Const(make([]float32, numel(zs)), zs...))
}

// matmulOp: C = opA(A)·opB(B) with opA(A) [m,k], opB(B) [k,n], so
// d opA(A) = dC·opB(B)^T and d opB(B) = opA(A)^T·dC, transposed back to the
// stored layouts.
func (o matmulOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	a, w := n.In[0], n.In[1]
	out := make([]*Tensor, len(n.In))
	dc := b.Reshape(dy, o.batch, o.m, o.n)
	if o.bias && need[2] {
		out[2] = b.Reshape(b.Sum(b.Reshape(dy, o.batch*o.m, o.n), 0), n.In[2].shape...)
	}
	bm := w // rank 2 (shared) or [batch, ...]
	if !o.broadcastB {
		bm = b.Reshape(w, wShape(o)...)
	} else {
		bm = b.Reshape(w, wShape(o)[1:]...)
	}
	a3 := b.Reshape(a, aShape(o)...)
	if need[0] {
		var da *Tensor
		if !o.transA {
			da = b.MatMul(dc, bm, false, !o.transB)
		} else if o.broadcastB {
			b.Errorf("grad: matmul with transposed A and a shared B has no backward")
			return out
		} else {
			da = b.MatMul(bm, dc, o.transB, true)
		}
		out[0] = b.Reshape(da, a.shape...)
	}
	if need[1] {
		var db *Tensor
		if o.broadcastB && !o.transA {
			// Fold the batch into rows: one product instead of a batch and a sum.
			a2 := b.Reshape(a, o.batch*o.m, o.k)
			dc2 := b.Reshape(dy, o.batch*o.m, o.n)
			if !o.transB {
				db = b.MatMul(a2, dc2, true, false)
			} else {
				db = b.MatMul(dc2, a2, true, false)
			}
		} else {
			if !o.transB {
				db = b.MatMul(a3, dc, !o.transA, false)
			} else {
				db = b.MatMul(dc, a3, true, o.transA)
			}
			if o.broadcastB {
				db = b.Sum(db, 0)
			}
		}
		out[1] = b.Reshape(db, w.shape...)
	}
	return out
}

func (o binaryOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x, y := n.In[0], n.In[1]
	out := make([]*Tensor, 2)
	switch o.kind {
	case BinAdd, BinSub:
		if need[0] {
			out[0] = b.sumTo(dy, x.shape)
		}
		if need[1] {
			g := dy
			if o.kind == BinSub {
				g = b.Scale(dy, -1)
			}
			out[1] = b.sumTo(g, y.shape)
		}
	case BinMul:
		if need[0] {
			out[0] = b.sumTo(b.Mul(dy, y), x.shape)
		}
		if need[1] {
			out[1] = b.sumTo(b.Mul(dy, x), y.shape)
		}
	case BinDiv:
		if need[0] {
			out[0] = b.sumTo(b.Div(dy, y), x.shape)
		}
		if need[1] {
			// d(x/y)/dy = -x/y^2
			out[1] = b.sumTo(b.Scale(b.Div(b.Mul(dy, x), b.Mul(y, y)), -1), y.shape)
		}
	}
	return out
}

func (o activationOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x := n.In[0]
	var g *Tensor
	switch o.act {
	case ActScale:
		g = b.Scale(dy, o.alpha)
	case ActSiLU, ActGELU, ActGELUTanh, ActQuickGELU, ActLeakyReLU:
		g = b.Mul(dy, b.Apply(x, o.act+ActSiLUGrad-ActSiLU, o.alpha))
	case ActSqrt:
		g = b.Div(b.Scale(dy, 0.5), n.Out)
	case ActExp:
		g = b.Mul(dy, n.Out)
	case ActRsqrt:
		// d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
		g = b.Scale(b.Mul(dy, b.Mul(n.Out, b.Mul(n.Out, n.Out))), -0.5)
	default:
		b.Errorf("grad: no backward for activation %v", o.act)
		return []*Tensor{nil}
	}
	return []*Tensor{g}
}

func (o gegluOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x := n.In[0]
	h := b.Slice(x, -1, 0, o.f)
	gate := b.Slice(x, -1, o.f, 2*o.f)
	dh := b.Mul(dy, b.GELU(gate))
	dg := b.Mul(b.Mul(dy, h), b.Apply(gate, ActGELUGrad, 0))
	return []*Tensor{b.Concat(dh, dg, -1)}
}

func (o softmaxOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	y := n.Out
	s := b.Reshape(b.Sum(b.Mul(dy, y), -1), append(y.Shape()[:y.Rank()-1], 1)...)
	return []*Tensor{b.Mul(y, b.Sub(dy, s))}
}

func (o concatOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	axis := concatAxis(n.In[0].shape, o.n, o.ca)
	out := make([]*Tensor, 2)
	if need[0] {
		out[0] = b.Slice(dy, axis, 0, o.ca)
	}
	if need[1] {
		out[1] = b.Slice(dy, axis, o.ca, o.ca+o.cb)
	}
	return out
}

// concatAxis recovers the axis of a concat or slice from the input shape:
// the one whose leading product is outer and whose size is size.
func concatAxis(shape []int, outer, size int) int {
	for i := range shape {
		if numel(shape[:i]) == outer && shape[i] == size {
			return i
		}
	}
	return -1
}

func (o sliceOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x := n.In[0]
	return []*Tensor{b.Pad(dy, concatAxis(x.shape, o.outer, o.axis), o.start, o.axis)}
}

func (o permuteOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	inv := make([]int, len(o.perm))
	for i, p := range o.perm {
		inv[p] = i
	}
	return []*Tensor{b.Permute(dy, inv...)}
}

func (o upsampleOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	g := b.Reshape(dy, o.n, o.c, o.h, 2, o.w, 2)
	g = b.Sum(b.Sum(g, 5), 3)
	return []*Tensor{g}
}

func (o reduceOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x := n.In[0]
	g := b.Reshape(dy, o.outer, 1, o.inner)
	if o.mean {
		g = b.Scale(g, 1/float32(o.axis))
	}
	return []*Tensor{b.Reshape(b.broadcastTo(g, []int{o.outer, o.axis, o.inner}), x.shape...)}
}

func (o l2normOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	// y = s x/|x|: dx = s/|x| (dy - xh (xh·dy)), xh = x/|x|.
	x := n.In[0]
	nrm := b.RowNorm(x)
	xh := b.Div(x, nrm)
	dot := b.Reshape(b.Sum(b.Mul(xh, dy), -1), nrm.shape...)
	g := b.Div(b.Sub(dy, b.Mul(xh, dot)), nrm)
	return []*Tensor{b.Scale(g, o.scale)}
}

func (o rowNormOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x := n.In[0]
	return []*Tensor{b.Mul(b.Div(x, n.Out), dy)}
}

func (o layerNormOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x, gamma, beta := n.In[0], n.In[1], n.In[2]
	rows, d := o.rows, o.d
	x2 := b.Reshape(x, rows, d)
	dy2 := b.Reshape(dy, rows, d)
	xh, inv := b.normalize(x2, d, o.eps)
	out := make([]*Tensor, 3)
	if need[0] {
		dxh := b.Mul(dy2, b.Reshape(gamma, 1, d))
		out[0] = b.Reshape(b.normBackward(xh, inv, dxh, d), x.shape...)
	}
	if need[1] {
		out[1] = b.Reshape(b.Sum(b.Mul(dy2, xh), 0), gamma.shape...)
	}
	if need[2] {
		out[2] = b.Reshape(b.Sum(dy2, 0), beta.shape...)
	}
	return out
}

// normalize returns xh = (x - mean)/sqrt(var + eps) over the last axis of
// x [rows, d] and inv = 1/sqrt(var+eps) [rows, 1].
func (b *Builder) normalize(x *Tensor, d int, eps float32) (xh, inv *Tensor) {
	rows := x.Dim(0)
	mean := b.Reshape(b.Mean(x, 1), rows, 1)
	xc := b.Sub(x, mean)
	v := b.Reshape(b.Mean(b.Mul(xc, xc), 1), rows, 1)
	inv = b.Rsqrt(b.Add(v, b.Const([]float32{eps}, 1, 1)))
	return b.Mul(xc, inv), inv
}

// normBackward is the input gradient of xh = normalize(x) given dxh:
// inv * (dxh - mean(dxh) - xh * mean(dxh * xh)).
func (b *Builder) normBackward(xh, inv, dxh *Tensor, d int) *Tensor {
	rows := xh.Dim(0)
	m1 := b.Reshape(b.Mean(dxh, 1), rows, 1)
	m2 := b.Reshape(b.Mean(b.Mul(dxh, xh), 1), rows, 1)
	return b.Mul(inv, b.Sub(b.Sub(dxh, m1), b.Mul(xh, m2)))
}

func (o groupNormOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	x, gamma, beta := n.In[0], n.In[1], n.In[2]
	cpg := o.c / o.groups
	rows, d := o.n*o.groups, cpg*o.hw
	xh, inv := b.normalize(b.Reshape(x, rows, d), d, o.eps)
	xh4 := b.Reshape(xh, o.n, o.c, o.hw)
	g4 := b.Reshape(gamma, 1, o.c, 1)
	if o.silu {
		// dy arrives for silu(z), z = xh*gamma + beta.
		z := b.Add(b.Mul(xh4, g4), b.Reshape(beta, 1, o.c, 1))
		dy = b.Mul(b.Reshape(dy, o.n, o.c, o.hw), b.Apply(z, ActSiLUGrad, 0))
	}
	dy3 := b.Reshape(dy, o.n, o.c, o.hw)
	out := make([]*Tensor, 3)
	if need[0] {
		dxh := b.Reshape(b.Mul(dy3, g4), rows, d)
		out[0] = b.Reshape(b.normBackward(xh, inv, dxh, d), x.shape...)
	}
	if need[1] {
		out[1] = b.Reshape(b.Sum(b.Sum(b.Mul(dy3, xh4), 2), 0), gamma.shape...)
	}
	if need[2] {
		out[2] = b.Reshape(b.Sum(b.Sum(dy3, 2), 0), beta.shape...)
	}
	return out
}

func (o embeddingOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	b.Errorf("grad: embedding tables and ids are not differentiable here (inject vectors instead)")
	return make([]*Tensor, 2)
}

func (o timestepOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	b.Errorf("grad: timestep embedding is not differentiable")
	return []*Tensor{nil}
}

func (o fourierOp) backward(b *Builder, n *Node, dy *Tensor, need []bool) []*Tensor {
	b.Errorf("grad: Fourier features are not differentiable (W is frozen)")
	return make([]*Tensor, 3)
}

func aShape(o matmulOp) []int {
	if o.transA {
		return []int{o.batch, o.k, o.m}
	}
	return []int{o.batch, o.m, o.k}
}

func wShape(o matmulOp) []int {
	if o.transB {
		return []int{o.batch, o.n, o.k}
	}
	return []int{o.batch, o.k, o.n}
}
