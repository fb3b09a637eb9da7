package graph

// Activation checkpointing. Without it, every activation a backward op
// reads stays alive from its forward node to that backward node, so the
// planned peak holds nearly all forward activations at once. A model marks
// segments (a UNet resnet or transformer, a CLIP layer) with Checkpoint;
// with SetCheckpointing(true), Grad keeps only what crosses a segment's
// boundary and, just before the segment's backward, re-emits the segment's
// forward ops from those kept inputs. The backward then reads the
// recomputed copies, the originals' last readers are forward nodes, and
// liveness planning frees them during the forward pass: the peak holds the
// boundaries plus one segment's internals, for one more forward pass of
// compute.

// Checkpoint opens a checkpoint segment: nodes added until the returned
// function is called belong to it (`defer b.Checkpoint()()` around a
// block). It does not change the scope, so weight names stay the same.
// Segments may nest; a node belongs to the innermost open one. Marking a
// segment changes nothing unless SetCheckpointing(true) is in effect when
// Grad is called.
func (b *Builder) Checkpoint() func() {
	b.lastSegment++
	b.segments = append(b.segments, b.lastSegment)
	return func() { b.segments = b.segments[:len(b.segments)-1] }
}

// SetCheckpointing makes later Grad calls recompute checkpoint segments in
// the backward instead of keeping their internal activations alive.
func (b *Builder) SetCheckpointing(on bool) { b.checkpointing = on }

// Checkpointing says whether Grad recomputes checkpoint segments.
func (b *Builder) Checkpointing() bool { return b.checkpointing }

// recomputer re-emits the forward nodes of checkpoint segments for one Grad
// call, each segment once, when its backward first needs it.
type recomputer struct {
	b       *Builder
	members map[int][]*Node // segment -> its forward nodes in order
	done    map[int]bool
	clone   map[int]*Tensor // original tensor id -> its recomputed copy
	added   []*Node         // recomputed nodes, in order (pruned if unused)
}

func newRecomputer(b *Builder, forward []*Node) *recomputer {
	r := &recomputer{b: b, members: map[int][]*Node{}, done: map[int]bool{}, clone: map[int]*Tensor{}}
	for _, n := range forward {
		if n.segment != 0 {
			r.members[n.segment] = append(r.members[n.segment], n)
		}
	}
	return r
}

// node returns n as its backward should see it: for a node of a segment,
// the same op over the recomputed inputs and output (recomputing the
// segment first if this is its first backward); otherwise n itself.
func (r *recomputer) node(n *Node) *Node {
	if n.segment == 0 {
		return n
	}
	if !r.done[n.segment] {
		r.emit(n.segment)
	}
	in := make([]*Tensor, len(n.In))
	for i, t := range n.In {
		in[i] = r.get(t)
	}
	return &Node{Op: n.Op, In: in, Out: r.get(n.Out), Scope: n.Scope}
}

// get maps a tensor to its recomputed copy: node outputs of recomputed
// segments and views of them; anything else (segment inputs, weights,
// consts, tensors of segments not recomputed) is read as it is, which is
// what keeps it alive until the backward.
func (r *recomputer) get(t *Tensor) *Tensor {
	if c, ok := r.clone[t.id]; ok {
		return c
	}
	if t.view == nil {
		return t
	}
	src := r.get(t.view)
	if src == t.view {
		return t
	}
	c := r.b.Reshape(src, t.shape...)
	r.clone[t.id] = c
	return c
}

func (r *recomputer) emit(seg int) {
	r.done[seg] = true
	for _, n := range r.members[seg] {
		in := make([]*Tensor, len(n.In))
		for i, t := range n.In {
			in[i] = r.get(t)
		}
		out := r.b.add(n.Op, n.Out.shape, in...)
		out.node.Scope = "recompute(" + n.Scope + ")"
		out.node.segment = 0 // a copy is not itself recomputed by a later Grad
		r.clone[n.Out.id] = out
		r.added = append(r.added, out.node)
	}
}

// prune drops recomputed nodes that no backward op read (a segment's final
// residual add, a branch whose backward needs no values), so checkpointing
// costs only the recomputation the backward uses. keep are tensors the
// caller holds (the gradients): they count as read.
func (r *recomputer) prune(keep []*Tensor) {
	if len(r.added) == 0 {
		return
	}
	b := r.b
	reads := map[int]int{}
	for _, n := range b.nodes {
		for _, t := range n.In {
			reads[t.root().id]++
		}
	}
	for _, t := range keep {
		if t != nil {
			reads[t.root().id]++
		}
	}
	for _, t := range b.outputs {
		reads[t.root().id]++
	}
	for _, a := range b.assigns {
		reads[a.Src.root().id]++
	}
	dead := map[*Node]bool{}
	// Backwards, so that a chain of unused copies goes as a whole.
	for i := len(r.added) - 1; i >= 0; i-- {
		n := r.added[i]
		if reads[n.Out.id] > 0 {
			continue
		}
		dead[n] = true
		for _, t := range n.In {
			reads[t.root().id]--
		}
	}
	if len(dead) == 0 {
		return
	}
	// A new slice: a graph built earlier may share the old one.
	kept := make([]*Node, 0, len(b.nodes)-len(dead))
	for _, n := range b.nodes {
		if !dead[n] {
			kept = append(kept, n)
		}
	}
	b.nodes = kept
}
