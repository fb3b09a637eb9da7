package graph

func (o concatOp) record(r *recorder, n *Node) error {
	total := o.n * (o.ca + o.cb) * o.inner
	push := []uint32{uint32(total), uint32(o.ca), uint32(o.cb), uint32(o.inner)}
	return r.dispatch("concat", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o sliceOp) record(r *recorder, n *Node) error {
	total := o.outer * o.length * o.inner
	push := []uint32{uint32(total), uint32(o.axis), uint32(o.inner), uint32(o.start), uint32(o.length)}
	return r.dispatch("slice", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o upsampleOp) record(r *recorder, n *Node) error {
	total := o.n * o.c * 4 * o.h * o.w
	push := []uint32{uint32(total), uint32(o.h), uint32(o.w)}
	return r.dispatch("upsample", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o permuteOp) record(r *recorder, n *Node) error {
	const rank = maxBroadcastRank
	inStrides := make([]int, len(o.in))
	s := 1
	for i := len(o.in) - 1; i >= 0; i-- {
		inStrides[i] = s
		s *= o.in[i]
	}
	push := make([]uint32, 1+2*rank)
	total := numel(o.in)
	push[0] = uint32(total)
	off := rank - len(o.perm)
	for i := 0; i < off; i++ {
		push[1+i] = 1
	}
	for i, pi := range o.perm {
		push[1+off+i] = uint32(o.in[pi])
		push[1+rank+off+i] = uint32(inStrides[pi])
	}
	return r.dispatch("permute", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o embeddingOp) record(r *recorder, n *Node) error {
	total := o.n * o.d
	push := []uint32{uint32(total), uint32(o.vocab), uint32(o.d)}
	return r.dispatch("embedding", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o timestepOp) record(r *recorder, n *Node) error {
	total := o.n * o.dim
	push := []uint32{uint32(total), uint32(o.dim), b32(o.flipSinToCos), f32(o.shift)}
	return r.dispatch("timestep", nil, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

func (o reduceOp) record(r *recorder, n *Node) error {
	push := []uint32{uint32(o.outer), uint32(o.axis), uint32(o.inner), b32(o.mean)}
	outs := o.outer * o.inner
	// Enough outputs to fill the device with one invocation each: walk the
	// axis serially; otherwise a workgroup tree per output.
	if outs >= 256 || r.cpuKernels() && outs*8 >= o.axis {
		return r.dispatch("reduce", []uint32{0}, push, r.grid(ceilDiv(outs, 256)), n.In, []*Tensor{n.Out})
	}
	return r.dispatch("reduce", []uint32{1}, push, r.grid(outs), n.In, []*Tensor{n.Out})
}
