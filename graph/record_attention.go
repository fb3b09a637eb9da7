package graph

import (
	"fmt"
	"math"
	"os"
)

// Workgroup sizes of shaders/attention.comp and shaders/softmax.comp (their
// local_size_x); the Go side derives tile counts from them.
const (
	attnWorkgroup    = 128
	softmaxWorkgroup = 128
	gegluWorkgroup   = 256
)

// attnLanes is how many threads of shaders/attention.comp share one query:
// enough that each holds at most 64 elements of q and of the output, which
// keeps SD's head dim 160 within a GPU's registers while small heads keep
// the cheaper one-thread-per-query path.
func attnLanes(dh, dhv int) int {
	switch d := max(dh, dhv); {
	case d <= 64:
		return 1
	case d <= 128:
		return 2
	default:
		return 4
	}
}

func (o attentionOp) record(r *recorder, n *Node) error {
	lanes := attnLanes(o.dh, o.dhv)
	qblocks := ceilDiv(o.nq, attnWorkgroup/lanes)
	groups := qblocks * o.batch * o.heads
	if int64(groups) > math.MaxUint32 {
		return fmt.Errorf("attention: %d workgroups overflow the grid", groups)
	}
	push := []uint32{
		uint32(o.nq), uint32(o.nk), uint32(o.heads),
		uint32(qblocks), uint32(groups), b32(o.causal),
		f32(o.scale * math.Log2E),
	}
	sg := 0
	if lanes == 1 && os.Getenv("ATTN_SG") != "" {
		sg = r.p.dev.Info().SubgroupSize
	}
	spec := []uint32{uint32(o.dh), uint32(o.dhv), uint32(lanes), uint32(sg)}
	return r.dispatch("attention", spec, push, r.grid(groups), n.In, []*Tensor{n.Out})
}

// softmaxThreads is the number of threads per row of shaders/softmax.comp:
// the smallest power of two covering the row, up to a whole workgroup.
func softmaxThreads(d int) int {
	t := 1
	for t < d && t < softmaxWorkgroup {
		t *= 2
	}
	return t
}

func (o softmaxOp) record(r *recorder, n *Node) error {
	tpr := softmaxThreads(o.d)
	groups := ceilDiv(o.rows, softmaxWorkgroup/tpr)
	return r.dispatch("softmax", []uint32{uint32(tpr)}, []uint32{uint32(o.rows), uint32(o.d)}, r.grid(groups), n.In, []*Tensor{n.Out})
}

func (o gegluOp) record(r *recorder, n *Node) error {
	total := o.rows * o.f
	return r.dispatch("geglu", nil, []uint32{uint32(total), uint32(o.f)}, r.grid(ceilDiv(total, gegluWorkgroup)), n.In, []*Tensor{n.Out})
}
