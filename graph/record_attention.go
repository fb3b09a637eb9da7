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
// key loop needs no per-block score array.
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
	return o.recordWith(r, n, attnConfigFor(o.dh, o.dhv, r.p.dev.Info()))
}

func (o attentionOp) recordWith(r *recorder, n *Node, cfg attnConfig) error {
	if !cfg.valid(o.dh, o.dhv, r.p.dev.Info()) {
		return fmt.Errorf("attention: thread layout %+v does not fit head dims %d/%d on this device", cfg, o.dh, o.dhv)
	}
	qblocks := ceilDiv(o.nq, cfg.queries())
	groups := qblocks * o.batch * o.heads
	if int64(groups) > math.MaxUint32 {
		return fmt.Errorf("attention: %d workgroups overflow the grid", groups)
	}
	push := []uint32{
		uint32(o.nq), uint32(o.nk), uint32(o.heads),
		uint32(qblocks), uint32(groups), o.maskPush(),
		f32(o.scale * math.Log2E),
	}
	spec := []uint32{uint32(o.dh), uint32(o.dhv), uint32(cfg.lanes), uint32(cfg.rq), uint32(cfg.wg), b32(cfg.perKey)}
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
