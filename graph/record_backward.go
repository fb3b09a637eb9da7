package graph

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/vk"
)

// GPU recording of the backward-only ops: conv2d's input gradient and the
// three attention backward passes.

// convBwdTile is the number of input channels and of input pixels per
// workgroup of conv2d_bwd_input.comp (its BM and BN).
const convBwdTile = 64

func (op conv2dBwdInputOp) record(r *recorder, n *Node) error {
	o := op.fwd
	sh, sw := o.p.StrideH, o.p.StrideW
	phases := sh * sw
	maxPhase := 0 // pixels of the largest stride phase
	for ry := 0; ry < sh; ry++ {
		for rx := 0; rx < sw; rx++ {
			maxPhase = max(maxPhase, phaseLen(o.h, sh, o.p.PadTop, ry)*phaseLen(o.w, sw, o.p.PadLeft, rx))
		}
	}
	if maxPhase == 0 {
		// Unreachable for a valid conv (every input pixel is in a phase),
		// but a zero grid would leave dx unwritten.
		return fmt.Errorf("conv2d backward: no input pixels")
	}
	cpu, ok := convCPUFor(r.p.dev.Info(), o.c, maxPhase)
	if ok && r.cpuKernels() {
		return op.recordCPU(r, n, cpu, phases, maxPhase)
	}
	pixTiles := ceilDiv(maxPhase, convBwdTile)
	cTiles := ceilDiv(o.c, convBwdTile)
	z := o.n * cTiles * phases
	if lim := int(r.p.dev.Info().MaxWorkgroupCount[2]); z > 65535 || (lim > 0 && z > lim) {
		return fmt.Errorf("conv2d backward: %d images x %d channel tiles x %d stride phases exceed the workgroup grid", o.n, cTiles, phases)
	}
	if o.h*o.w > math.MaxUint32/convBwdTile {
		return fmt.Errorf("conv2d backward: input %dx%d too large", o.h, o.w)
	}
	groups := r.grid(pixTiles)
	groups[2] = uint32(z)
	push := []uint32{
		uint32(o.c), uint32(o.h), uint32(o.w), uint32(o.o), uint32(o.ho), uint32(o.wo),
		uint32(o.kh), uint32(o.kw), uint32(sh), uint32(sw), uint32(o.p.PadTop), uint32(o.p.PadLeft),
		uint32(pixTiles), uint32(cTiles),
	}
	// dispatch picks the _h variant when the filter is an fp16 weight; dy
	// and dx stay fp32 (the op does not implement halfStorage: training
	// keeps fp32 where a backward kernel reads or writes).
	return r.dispatch("conv2d_bwd_input", nil, push, groups, n.In, []*Tensor{n.Out})
}

// recordCPU dispatches conv2d_bwd_input_cpu.comp: c.oc input channels of
// c.px pixels of one stride phase per invocation.
func (op conv2dBwdInputOp) recordCPU(r *recorder, n *Node, c convCPU, phases, maxPhase int) error {
	o := op.fwd
	pixBlocks, cBlocks := ceilDiv(maxPhase, c.sg*c.px), ceilDiv(o.c, c.oc)
	z := o.n * cBlocks * phases
	if lim := int(r.p.dev.Info().MaxWorkgroupCount[2]); z > 65535 || (lim > 0 && z > lim) {
		return fmt.Errorf("conv2d backward: %d images x %d channel blocks x %d stride phases exceed the workgroup grid", o.n, cBlocks, phases)
	}
	if o.h*o.w > math.MaxUint32-c.sg*c.px {
		return fmt.Errorf("conv2d backward: input %dx%d too large", o.h, o.w)
	}
	groups := r.grid(pixBlocks)
	groups[2] = uint32(z)
	push := []uint32{
		uint32(o.c), uint32(o.h), uint32(o.w), uint32(o.o), uint32(o.ho), uint32(o.wo),
		uint32(o.kh), uint32(o.kw), uint32(o.p.StrideH), uint32(o.p.StrideW), uint32(o.p.PadTop), uint32(o.p.PadLeft),
		uint32(pixBlocks), uint32(cBlocks),
	}
	spec := []uint32{uint32(c.oc), uint32(c.px), uint32(c.sg)}
	return r.dispatch("conv2d_bwd_input_cpu", spec, push, groups, n.In, []*Tensor{n.Out})
}

// phaseLen is how many of the size input rows (or columns) i have
// (i + pad) % stride == phase, mirroring conv2d_bwd_input.comp.
func phaseLen(size, stride, pad, phase int) int {
	first := ((phase-pad)%stride + stride) % stride
	if first >= size {
		return 0
	}
	return (size - first + stride - 1) / stride
}

// attnBwdLayout is how an attention backward kernel spreads its rows
// (queries in the stats and q passes, keys in the kv pass) over a
// workgroup: wg threads, lanes threads per row, rows per thread. The zero
// value asks attnBwdLayoutFor to pick one for the device.
type attnBwdLayout struct{ wg, lanes, rows int }

// perGroup is the number of rows one workgroup handles.
func (c attnBwdLayout) perGroup() int { return c.wg / c.lanes * c.rows }

type attnBwdPass int

const (
	passStats attnBwdPass = iota
	passQ
	passKV
)

// attnBwdBlock is the number of keys (stats and q passes) or queries (kv
// pass) staged in shared memory per step: BK or BQ of the shaders.
const attnBwdBlock = 16

// attnBwdRegBudget bounds the per-row state one GPU thread keeps, in vec4s
// (96 floats), so that a thread fits its registers at SD's head dim 160.
const attnBwdRegBudget = 24

// regs is the per-row state of one thread in vec4s: q for stats; q, dq and
// dO for the q pass; k, v, dk and dv for the kv pass.
func (c attnBwdLayout) regs(pass attnBwdPass, dh, dhv int) int {
	dq, dv := ceilDiv(ceilDiv(dh, 4), c.lanes), ceilDiv(ceilDiv(dhv, 4), c.lanes)
	switch pass {
	case passStats:
		return c.rows * dq
	case passQ:
		return c.rows * (2*dq + dv)
	default:
		return c.rows * (2*dq + 2*dv)
	}
}

// sharedBytes mirrors the shared arrays of the pass's shader.
func (c attnBwdLayout) sharedBytes(pass attnBwdPass, dh, dhv int) int {
	const blk = attnBwdBlock
	dh4, dhv4 := ceilDiv(dh, 4), ceilDiv(dhv, 4)
	var n, stride int
	switch pass {
	case passStats:
		n, stride = 16*blk*dh4, blk+1
	case passQ:
		n, stride = 16*blk*(dh4+dhv4), 2*blk+1
	default:
		n, stride = 16*blk*(dh4+dhv4)+8*blk, 2*blk+1
	}
	if c.lanes > 1 {
		return n + 4*c.wg*c.rows*stride
	}
	return n + 4
}

// valid reports whether the pass's shader can run c for head dims dh and
// dhv on a device with the given limits.
func (c attnBwdLayout) valid(pass attnBwdPass, dh, dhv int, info vk.DeviceInfo) bool {
	if c.wg <= 0 || c.lanes <= 0 || c.rows <= 0 || c.wg%c.lanes != 0 {
		return false
	}
	if lim := int(info.MaxWorkgroupInvocations); lim > 0 && c.wg > lim {
		return false
	}
	if lim := int(info.MaxWorkgroupSize[0]); lim > 0 && c.wg > lim {
		return false
	}
	if lim := int(info.MaxSharedMemory); lim > 0 && c.sharedBytes(pass, dh, dhv) > lim {
		return false
	}
	return true
}

// attnBwdCPUBudget bounds the per-row state of a thread on a CPU device, in
// vec4s. There, several rows per thread pay off (each shared load feeds all
// of them; runtime falls almost as 1/rows), but lavapipe compiles a kernel
// in time that grows faster than linearly with the state a thread keeps:
// at 4 rows the kv pass for head dim 40 takes seconds longer to compile
// than at 2, for every head dim a program uses. The budget keeps every
// kernel around two seconds of compilation.
const attnBwdCPUBudget = 80

// attnBwdLayoutFor picks a pass's thread layout for a device. CPU
// implementations run each shared load as a loop over the SIMD lanes and
// have registers to spare: up to 4 rows per thread within attnBwdCPUBudget.
// GPUs get one row per thread, split over as many lanes as keep a thread's
// state within attnBwdRegBudget, and a workgroup shrunk until its shared
// memory fits.
func attnBwdLayoutFor(pass attnBwdPass, dh, dhv int, info vk.DeviceInfo) (attnBwdLayout, error) {
	c := attnBwdLayout{wg: 128, lanes: 1, rows: 1}
	if info.Type == "cpu" {
		c = attnBwdLayout{wg: 32, lanes: 1, rows: 4}
		for c.rows > 1 && c.regs(pass, dh, dhv) > attnBwdCPUBudget {
			c.rows /= 2
		}
	} else {
		for c.lanes < 32 && c.regs(pass, dh, dhv) > attnBwdRegBudget {
			c.lanes *= 2
		}
	}
	for c.wg > c.lanes && !c.valid(pass, dh, dhv, info) {
		c.wg /= 2
	}
	if !c.valid(pass, dh, dhv, info) {
		return c, fmt.Errorf("no thread layout fits head dims %d/%d on this device", dh, dhv)
	}
	return c, nil
}

// attnBwdSetup resolves a pass's layout (forced or picked) and its grid of
// rows blocks x batch x heads.
func attnBwdSetup(r *recorder, o attentionOp, forced attnBwdLayout, pass attnBwdPass, rows int) (attnBwdLayout, int, int, error) {
	info := r.p.dev.Info()
	c := forced
	if c == (attnBwdLayout{}) {
		var err error
		if c, err = attnBwdLayoutFor(pass, o.dh, o.dhv, info); err != nil {
			return c, 0, 0, err
		}
	} else if !c.valid(pass, o.dh, o.dhv, info) {
		return c, 0, 0, fmt.Errorf("thread layout %+v does not fit head dims %d/%d on this device", c, o.dh, o.dhv)
	}
	blocks := ceilDiv(rows, c.perGroup())
	groups := blocks * o.batch * o.heads
	if int64(groups) > math.MaxUint32 {
		return c, 0, 0, fmt.Errorf("%d workgroups overflow the grid", groups)
	}
	return c, blocks, groups, nil
}

func (op attnBwdStatsOp) record(r *recorder, n *Node) error {
	o := op.fwd
	c, blocks, groups, err := attnBwdSetup(r, o, op.layout, passStats, o.nq)
	if err != nil {
		return fmt.Errorf("attention backward stats: %w", err)
	}
	push := []uint32{
		uint32(o.nq), uint32(o.nk), uint32(o.heads), uint32(blocks), uint32(groups), o.maskPush(),
		f32(o.scale * math.Log2E), uint32(o.dhv),
	}
	spec := []uint32{uint32(o.dh), uint32(c.lanes), uint32(c.rows), uint32(c.wg)}
	return r.dispatch("attention_bwd_stats", spec, push, r.grid(groups), n.In, []*Tensor{n.Out})
}

func (op attnBwdQOp) record(r *recorder, n *Node) error {
	o := op.fwd
	c, blocks, groups, err := attnBwdSetup(r, o, op.layout, passQ, o.nq)
	if err != nil {
		return fmt.Errorf("attention backward q: %w", err)
	}
	push := []uint32{
		uint32(o.nq), uint32(o.nk), uint32(o.heads), uint32(blocks), uint32(groups), o.maskPush(),
		f32(o.scale * math.Log2E), f32(o.scale),
	}
	spec := []uint32{uint32(o.dh), uint32(o.dhv), uint32(c.lanes), uint32(c.rows), uint32(c.wg)}
	return r.dispatch("attention_bwd_q", spec, push, r.grid(groups), n.In, []*Tensor{n.Out})
}

func (op attnBwdKVOp) record(r *recorder, n *Node) error {
	o := op.fwd
	c, blocks, groups, err := attnBwdSetup(r, o, op.layout, passKV, o.nk)
	if err != nil {
		return fmt.Errorf("attention backward kv: %w", err)
	}
	push := []uint32{
		uint32(o.nq), uint32(o.nk), uint32(o.heads), uint32(blocks), uint32(groups), o.maskPush(),
		f32(o.scale * math.Log2E), f32(o.scale), uint32(o.batch * o.nk * o.heads * o.dh),
	}
	spec := []uint32{uint32(o.dh), uint32(o.dhv), uint32(c.lanes), uint32(c.rows), uint32(c.wg)}
	return r.dispatch("attention_bwd_kv", spec, push, r.grid(groups), n.In, []*Tensor{n.Out})
}
