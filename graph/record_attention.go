package graph

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/vk"
)

// attnConfig is how shaders/attention.comp spreads a block of queries over
// a workgroup: wg threads, lanes threads per query, rq queries per thread,
// and whether the running max moves per key (the CPU layout) or per block.
type attnConfig struct {
	wg, lanes, rq int
	perKey        bool
}

// queries is the number of queries one workgroup handles.
func (c attnConfig) queries() int { return c.wg / c.lanes * c.rq }

// valid reports whether the shader can run c for head dims dh and dhv on a
// device with the given limits: every per-thread share of a head fits the
// register budget the shader is written for and shared memory suffices.
func (c attnConfig) valid(dh, dhv int, info vk.DeviceInfo) bool {
	if c.wg <= 0 || c.lanes <= 0 || c.rq <= 0 || c.wg%c.lanes != 0 || (c.perKey && c.lanes != 1) {
		return false
	}
	if lim := int(info.MaxWorkgroupInvocations); lim > 0 && c.wg > lim {
		return false
	}
	if lim := int(info.MaxWorkgroupSize[0]); lim > 0 && c.wg > lim {
		return false
	}
	if lim := int(info.MaxSharedMemory); lim > 0 && c.sharedBytes(dh, dhv) > lim {
		return false
	}
	return true
}

// sharedBytes mirrors the shared arrays of shaders/attention.comp.
func (c attnConfig) sharedBytes(dh, dhv int) int {
	const bk = 16
	n := bk*16*ceilDiv(dh, 4) + bk*16*ceilDiv(dhv, 4)
	if c.lanes > 1 {
		n += 4 * c.wg * c.rq * (bk + 1)
	} else {
		n += 4
	}
	return n
}

// attnConfigFor picks the thread layout for a device. GPUs read shared
// memory at full speed but have few registers per thread: one query per
// thread, split over 2 or 4 threads past 16 vec4 chunks of head (SD's 80
// and 160). CPU implementations (lavapipe) execute each shared load as a
// loop over the SIMD lanes and have registers to spare: several queries per
// thread reuse each load, and the running max moves per key so that the
// key loop needs no per-block score array. (CPU devices run this layout
// only for heads too large for attention_cpu.comp, see attnCPUFor.)
func attnConfigFor(dh, dhv int, info vk.DeviceInfo) attnConfig {
	chunks := ceilDiv(dh, 4) + ceilDiv(dhv, 4)
	if info.Type == "cpu" {
		c := attnConfig{wg: 16, lanes: 1, rq: 16, perKey: true}
		for c.rq > 1 && c.rq*chunks > attnCPUState {
			c.rq /= 2
		}
		return c
	}
	c := attnConfig{wg: 128, lanes: 1, rq: 1}
	switch m := ceilDiv(max(dh, dhv), 4); {
	case m > 32:
		c.lanes = 4
	case m > 16:
		c.lanes = 2
	}
	return c
}

// attnCPUState bounds the vec4 chunks of q and output one CPU thread holds
// (rq times the chunks of both head dims). Lavapipe (Mesa 22.3) gets
// faster up to about 320 and then falls off a cliff: past it the key loop
// stops being unrolled and a run slows by orders of magnitude (at 1280 it
// even returned wrong results); compile time also grows with it, a few
// seconds at 160.
const attnCPUState = 160

func (o attentionOp) record(r *recorder, n *Node) error {
	if c, ok := attnCPUFor(r.p.dev.Info(), o.nq, o.dh, o.dhv); ok && r.cpuKernels() {
		return o.recordCPU(r, n, c)
	}
	return o.recordWith(r, n, attnConfigFor(o.dh, o.dhv, r.p.dev.Info()))
}

// attnCPU is how shaders/attention_cpu.comp splits the queries: sg lanes
// (one subgroup per workgroup) of rq queries each.
type attnCPU struct{ sg, rq int }

// attnCPUFor picks attention_cpu.comp's split for nq queries, false where
// the barrier-free kernel does not apply: subgroups wider than 16 (GPUs,
// when a test forces the CPU family: on an H200, subgroup 32, its
// per-block key broadcasts made the graph tests run past 120 s; those
// devices run attention.comp's layouts), and heads past attnCPUHead, whose fully unrolled kernel lavapipe compiles
// too slowly (head dim 160: about 100 s per pipeline, against a few
// seconds for attention.comp's CPU layout). rq is the largest power of two
// up to 4 that keeps a lane's queries and outputs within attnCPUFloats
// floats (lavapipe compiles 4 x (32+32) in about 6 s, 8 x (32+32) in 13 s
// for little gain) and does not leave a workgroup's last query row empty
// (16 queries: 2 per lane, not 4 with half the lanes idle).
func attnCPUFor(info vk.DeviceInfo, nq, dh, dhv int) (attnCPU, bool) {
	sg, ok := cpuSubgroup(info, 16, "ballot")
	if !ok || dh+dhv > attnCPUHead {
		return attnCPU{}, false
	}
	c := attnCPU{sg: sg, rq: 4}
	for c.rq > 1 && (c.rq*(dh+dhv) > attnCPUFloats || (c.rq-1)*sg >= nq) {
		c.rq /= 2
	}
	return c, true
}

// Limits of attention_cpu.comp (see attnCPUFor): q plus v head dims, and
// floats of queries and outputs per lane.
const (
	attnCPUHead   = 96
	attnCPUFloats = 256
)

// recordCPU dispatches attention_cpu.comp (Options.Kernels "cpu", the
// default on CPU devices): c.rq queries per lane, c.sg lanes per workgroup.
func (o attentionOp) recordCPU(r *recorder, n *Node, c attnCPU) error {
	groups, push, err := o.grid(c.sg * c.rq)
	if err != nil {
		return err
	}
	spec := []uint32{uint32(c.sg), uint32(o.dh), uint32(o.dhv), uint32(c.rq)}
	return r.dispatch("attention_cpu", spec, push, r.grid(groups), n.In, []*Tensor{n.Out})
}

func (o attentionOp) recordWith(r *recorder, n *Node, cfg attnConfig) error {
	if !cfg.valid(o.dh, o.dhv, r.p.dev.Info()) {
		return fmt.Errorf("attention: thread layout %+v does not fit head dims %d/%d on this device", cfg, o.dh, o.dhv)
	}
	groups, push, err := o.grid(cfg.queries())
	if err != nil {
		return err
	}
	spec := []uint32{uint32(o.dh), uint32(o.dhv), uint32(cfg.lanes), uint32(cfg.rq), uint32(cfg.wg), b32(cfg.perKey)}
	return r.dispatch("attention", spec, push, r.grid(groups), n.In, []*Tensor{n.Out})
}

// grid is the workgroup count and push constants of attention.comp and
// attention_cpu.comp (the same block) for workgroups of perGroup queries.
func (o attentionOp) grid(perGroup int) (int, []uint32, error) {
	qblocks := ceilDiv(o.nq, perGroup)
	groups := qblocks * o.batch * o.heads
	if int64(groups) > math.MaxUint32 {
		return 0, nil, fmt.Errorf("attention: %d workgroups overflow the grid", groups)
	}
	push := []uint32{
		uint32(o.nq), uint32(o.nk), uint32(o.heads),
		uint32(qblocks), uint32(groups), o.maskPush(),
		f32(o.scale * math.Log2E),
	}
	return groups, push, nil
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

// Workgroup sizes of shaders/softmax.comp and shaders/geglu.comp.
const (
	softmaxWorkgroup = 128
	gegluWorkgroup   = 256
)

func (o softmaxOp) record(r *recorder, n *Node) error {
	tpr := softmaxThreads(o.d)
	groups := ceilDiv(o.rows, softmaxWorkgroup/tpr)
	return r.dispatch("softmax", []uint32{uint32(tpr)}, []uint32{uint32(o.rows), uint32(o.d)}, r.grid(groups), n.In, []*Tensor{n.Out})
}

func (o gegluOp) record(r *recorder, n *Node) error {
	total := o.rows * o.f
	return r.dispatch("geglu", nil, []uint32{uint32(total), uint32(o.f)}, r.grid(ceilDiv(total, gegluWorkgroup)), n.In, []*Tensor{n.Out})
}
