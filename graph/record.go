package graph

import (
	"fmt"

	"github.com/neti-project/neti/vk"
)

// GPU recording of the ops whose shaders are simple enough to sit together.

func (o matmulOp) record(r *recorder, n *Node) error {
	a, b := n.In[0], n.In[1]
	bias := a // bound but unused when there is no bias (HAS_BIAS=false)
	if o.bias {
		bias = n.In[2]
	}
	strideB := o.k * o.n
	if o.broadcastB {
		strideB = 0
	}
	push := []uint32{uint32(o.m), uint32(o.n), uint32(o.k), uint32(o.m * o.k), uint32(strideB), uint32(o.m * o.n)}
	spec := []uint32{b32(o.transA), b32(o.transB), b32(o.bias)}
	if sg, rm, ok := matmulSGFor(r.p.dev.Info(), o); ok && r.cpuKernels() {
		groups := [3]uint32{uint32(ceilDiv(o.n/4, sg*sgQuads)), uint32(ceilDiv(o.m, rm)), uint32(o.batch)}
		return r.dispatch("matmul_sg", append(spec, uint32(sg), uint32(rm), sgQuads), push, groups, []*Tensor{a, b, bias}, []*Tensor{n.Out})
	}
	if r.cpuKernels() && o.n < 128 && ceilDiv(o.m, 64) <= 65535 {
		groups := [3]uint32{uint32(ceilDiv(o.n, 16)), uint32(ceilDiv(o.m, 64)), uint32(o.batch)}
		return r.dispatch("matmul_cols", append(spec, 16), push, groups, []*Tensor{a, b, bias}, []*Tensor{n.Out})
	}
	if r.cpuKernels() && ceilDiv(o.m, 8) <= 65535 {
		groups := [3]uint32{uint32(ceilDiv(o.n, 256)), uint32(ceilDiv(o.m, 8)), uint32(o.batch)}
		return r.dispatch("matmul_rows", spec, push, groups, []*Tensor{a, b, bias}, []*Tensor{n.Out})
	}
	groups := [3]uint32{uint32(ceilDiv(o.n, 64)), uint32(ceilDiv(o.m, 64)), uint32(o.batch)}
	return r.dispatch("matmul", spec, push, groups, []*Tensor{a, b, bias}, []*Tensor{n.Out})
}

// sgQuads is matmul_sg.comp's CQ, the column quads each lane owns.
const sgQuads = 2

// matmulSGFor says whether matmul_sg.comp can run the product on the device
// and with which subgroup size and rows per workgroup. Its loads and stores
// are all vec4, so N and K, and M where A is transposed, must be multiples
// of 4 (the planner binds every tensor at a 16-byte aligned offset, and
// with these the batch strides are multiples of 4 too); C narrower than
// half a workgroup's 8*SG columns stays with matmul_cols.comp.
//
// A workgroup computes 64 rows x 8*SG columns: per step of 4 k a lane
// issues 8 + 8 loads for 2048 multiply-adds. On lavapipe at 1024^3 that
// measured 7.2 GFLOPS against 4.1 for 32 x 4*SG and 8.5 for 128 x 8*SG,
// but the bigger the block the longer LLVM compiles the pipeline (TestMatMul
// from 4 s to 10 s and 33 s uncached), so 64 rows it is. RM must be a
// multiple of 4*SG (transposed A loads row quads), so wide subgroups, which
// CPU devices do not have, are left to the other kernels.
func matmulSGFor(info vk.DeviceInfo, o matmulOp) (sg, rm int, ok bool) {
	sg, ok = cpuSubgroup(info, 16, "ballot")
	if !ok {
		return 0, 0, false
	}
	if o.n%4 != 0 || o.k%4 != 0 || o.transA && o.m%4 != 0 || o.n < 4*sg {
		return 0, 0, false
	}
	rm = 64
	if ceilDiv(o.m, rm) > 65535 || ceilDiv(o.n/4, sg*sgQuads) > 65535 {
		return 0, 0, false
	}
	return sg, rm, true
}

func (o activationOp) record(r *recorder, n *Node) error {
	return r.dispatch("activation", []uint32{uint32(o.act)}, []uint32{uint32(o.n), f32(o.alpha)}, r.grid(ceilDiv(o.n, 256)), n.In, []*Tensor{n.Out})
}

func (o binaryOp) record(r *recorder, n *Node) error {
	const rank = maxBroadcastRank
	push := make([]uint32, 1+3*rank)
	total := numel(o.out)
	push[0] = uint32(total)
	off := rank - len(o.out)
	for i := 0; i < off; i++ {
		push[1+i] = 1
	}
	sa, sb := 1, 1
	for i := len(o.out) - 1; i >= 0; i-- {
		push[1+off+i] = uint32(o.out[i])
		if o.aShape[i] != 1 {
			push[1+rank+off+i] = uint32(sa)
		}
		if o.bShape[i] != 1 {
			push[1+2*rank+off+i] = uint32(sb)
		}
		sa *= o.aShape[i]
		sb *= o.bShape[i]
	}
	same := sameShape(o.aShape, o.out) && sameShape(o.bShape, o.out)
	return r.dispatch("binary", []uint32{uint32(o.kind), b32(same)}, push, r.grid(ceilDiv(total, 256)), n.In, []*Tensor{n.Out})
}

// errNoKernel marks ops whose shader is not written yet; Compile fails with
// it instead of producing wrong results.
func errNoKernel(n *Node) error { return fmt.Errorf("no GPU kernel for %s yet", n.Op.Name()) }
