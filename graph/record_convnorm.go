package graph

import (
	"fmt"
	"math"

	"github.com/neti-project/neti/vk"
)

// GPU recording of conv2d, groupnorm and layernorm.

const (
	convPixels = 64           // output pixels per conv2d workgroup (conv2d.comp BN)
	gnGroup    = 128          // invocations per groupnorm workgroup (groupnorm_stats.glsl GN_WG)
	gnMinChunk = 32 * gnGroup // elements per groupnorm chunk, at least
	gnMaxParts = 256          // chunks per group, at most
)

func (o conv2dOp) record(r *recorder, n *Node) error {
	x, w := n.In[0], n.In[1]
	bias := x // bound but unused when there is no bias (HAS_BIAS=false)
	if o.bias {
		bias = n.In[2]
	}
	if c, ok := convCPUFor(r.p.dev.Info(), o.o, o.ho*o.wo); ok && r.cpuKernels() {
		return o.recordCPU(r, n, x, w, bias, c)
	}
	pix := o.ho * o.wo
	tm := convRows(o.o)
	pixTiles, oTiles := ceilDiv(pix, convPixels), ceilDiv(o.o, 16*tm)
	z := o.n * oTiles
	if lim := int(r.p.dev.Info().MaxWorkgroupCount[2]); z > 65535 || (lim > 0 && z > lim) {
		return fmt.Errorf("conv2d: %d images x %d channel tiles exceed the workgroup grid", o.n, oTiles)
	}
	if pix > math.MaxUint32/convPixels || o.c*o.kh*o.kw > math.MaxInt32 {
		return fmt.Errorf("conv2d: output %dx%d or patch %dx%dx%d too large", o.ho, o.wo, o.c, o.kh, o.kw)
	}
	groups := r.grid(pixTiles)
	groups[2] = uint32(z)
	push := []uint32{
		uint32(o.c), uint32(o.h), uint32(o.w), uint32(o.o), uint32(o.ho), uint32(o.wo),
		uint32(o.p.StrideH), uint32(o.p.StrideW), uint32(o.p.PadTop), uint32(o.p.PadLeft),
		uint32(pixTiles), uint32(oTiles),
	}
	spec := []uint32{uint32(o.kh), uint32(o.kw), b32(o.bias), uint32(tm)}
	return r.dispatch("conv2d", spec, push, groups, []*Tensor{x, w, bias}, []*Tensor{n.Out})
}

// convCPU is how conv2d_cpu.comp and conv2d_bwd_input_cpu.comp split
// their work: a workgroup is one subgroup of sg lanes, each computing oc
// channels of px pixels.
type convCPU struct{ oc, px, sg int }

// convCPUFor picks the split for outputs of the given channel count and
// pixels per image (per stride phase for the input gradient), or
// says the device cannot run the CPU kernels (they need subgroup
// broadcasts). On lavapipe every load costs a loop over the SIMD lanes, so
// an invocation keeps 64 channels x 16 pixels of accumulators: per input
// channel and tap that is 8 + 16 loads for 1024 multiply-adds. Measured at
// the VAE's 128x64x64 and SD's 320x32x32 3x3 convolutions (forward and
// input gradient), with the shaders' [[unroll]]: 32 x 4 ran 2 GFLOPS under
// load where 64 x 16 ran 8-10, 64 x 8 7, 128 x 16 and 64 x 32 8-10; the
// bigger blocks compile longer (lavapipe compiles each pipeline anew in
// every program), so 64 x 16. Fewer output channels get a block of 32, 16
// or 8, at least a subgroup wide; small images get 8 or 4 pixels, so a
// 4x4 latent does not run one mostly empty block of 128 pixels per image
// (2x64x4x4 took 3.3 ms with 16 pixels, 1.5 with 4).
func convCPUFor(info vk.DeviceInfo, channels, pixels int) (convCPU, bool) {
	sg, ok := cpuSubgroup(info, 64, "ballot")
	if !ok {
		return convCPU{}, false
	}
	c := convCPU{oc: 64, px: 16, sg: sg}
	if info.Type != "cpu" {
		// GPUs run these kernels only in tests (the "cpu" family forced):
		// there 64 x 16 accumulators per invocation are a thousand
		// registers, spilled, and minutes of shader compilation (the H100's
		// graph tests timed out); 32 x 4 ran them in seconds.
		c.oc, c.px = 32, 4
	}
	for c.oc > sg && c.oc/2 >= channels {
		c.oc /= 2
	}
	c.oc = max(c.oc, sg)
	for c.px > 4 && sg*c.px/2 >= pixels {
		c.px /= 2
	}
	return c, true
}

func hasSubgroupOp(info vk.DeviceInfo, op string) bool {
	for _, o := range info.SubgroupOps {
		if o == op {
			return true
		}
	}
	return false
}

// cpuSubgroup is the subgroup size the barrier-free CPU-device kernels run
// with: a power of two up to max, with every named subgroup operation.
func cpuSubgroup(info vk.DeviceInfo, max int, ops ...string) (int, bool) {
	sg := info.SubgroupSize
	if sg < 1 || sg > max || sg&(sg-1) != 0 {
		return 0, false
	}
	for _, op := range ops {
		if !hasSubgroupOp(info, op) {
			return 0, false
		}
	}
	return sg, true
}

// recordCPU dispatches conv2d_cpu.comp: c.oc output channels of c.px
// pixels per invocation.
func (o conv2dOp) recordCPU(r *recorder, n *Node, x, w, bias *Tensor, c convCPU) error {
	pix := o.ho * o.wo
	pixBlocks, oBlocks := ceilDiv(pix, c.sg*c.px), ceilDiv(o.o, c.oc)
	z := o.n * oBlocks
	if lim := int(r.p.dev.Info().MaxWorkgroupCount[2]); z > 65535 || (lim > 0 && z > lim) {
		return fmt.Errorf("conv2d: %d images x %d channel blocks exceed the workgroup grid", o.n, oBlocks)
	}
	if pix > math.MaxUint32-c.sg*c.px {
		return fmt.Errorf("conv2d: output %dx%d too large", o.ho, o.wo)
	}
	groups := r.grid(pixBlocks)
	groups[2] = uint32(z)
	push := []uint32{
		uint32(o.c), uint32(o.h), uint32(o.w), uint32(o.o), uint32(o.ho), uint32(o.wo),
		uint32(o.kh), uint32(o.kw), uint32(o.p.StrideH), uint32(o.p.StrideW), uint32(o.p.PadTop), uint32(o.p.PadLeft),
		b32(o.bias), uint32(pixBlocks), uint32(oBlocks),
	}
	spec := []uint32{uint32(c.oc), uint32(c.px), uint32(c.sg)}
	return r.dispatch("conv2d_cpu", spec, push, groups, []*Tensor{x, w, bias}, []*Tensor{n.Out})
}

// convRows is conv2d.comp's TM, output channels per invocation: a
// workgroup covers 16*TM channels, so few output channels get a narrow tile
// instead of computing 64 to keep 3.
func convRows(channels int) int {
	switch {
	case channels <= 16:
		return 1
	case channels <= 32:
		return 2
	}
	return 4
}

// gnChunking splits a group of gsize elements into chunks: at least
// gnMinChunk elements each so a workgroup has real work, and at most
// gnMaxParts of them so the merge in groupnorm.comp stays cheap even though
// every chunk's workgroup repeats it.
func gnChunking(gsize int) (chunk, nChunks int) {
	chunk = max(gnMinChunk, ceilDiv(gsize, gnMaxParts))
	chunk = ceilDiv(chunk, gnGroup) * gnGroup
	return chunk, ceilDiv(gsize, chunk)
}

// scratchFloats is the size of the chunk statistics of one groupnorm.
func (o groupNormOp) scratchFloats() int {
	_, nChunks := gnChunking(o.c / o.groups * o.hw)
	return 2 * o.n * o.groups * nChunks
}

func (o groupNormOp) record(r *recorder, n *Node) error {
	x, gamma, beta := n.In[0], n.In[1], n.In[2]
	gsize := o.c / o.groups * o.hw
	chunk, nChunks := gnChunking(gsize)
	work := o.n * o.groups * nChunks
	// Both families take the scratch, even the CPU kernel that fuses a
	// one-chunk group and binds none: Plan has no device to tell the
	// families apart and counts it (normScratchBytes), so allocating it
	// keeps planned and compiled memory equal. It is small: two floats per
	// chunk (128 KiB for 2 images x 32 groups x 256 chunks).
	part, err := r.normScratch(o.scratchFloats())
	if err != nil {
		return fmt.Errorf("groupnorm: %w", err)
	}
	grid := r.grid(work)
	push := []uint32{uint32(gsize), uint32(chunk), uint32(nChunks), uint32(work)}
	apply := append(push[:4:4], uint32(o.c), uint32(o.hw), f32(o.eps))
	// The CPU kernels run one subgroup per workgroup and need broadcasts.
	if sg, ok := cpuSubgroup(r.p.dev.Info(), 64, "ballot"); ok && r.cpuKernels() {
		return o.recordCPU(r, n, part, sg, nChunks == 1, apply, grid)
	}
	if err := r.dispatch("groupnorm_stats", nil, push, grid, []*Tensor{x}, []*Tensor{part}); err != nil {
		return err
	}
	return r.dispatch("groupnorm", []uint32{b32(o.silu)}, apply, grid, []*Tensor{x, gamma, beta, part}, []*Tensor{n.Out})
}

// recordCPU dispatches groupnorm_cpu*.comp (no barriers, one subgroup per
// workgroup) over the same chunks as the GPU kernels, each taking
// groupnorm.comp's push constants: a group of one chunk (fused) in one
// dispatch, bigger groups as chunk statistics into the scratch, then the
// merge and normalisation per chunk (which keeps a few big groups spread
// over all of lavapipe's threads). Planes of whole vec4s get vec4 loads.
func (o groupNormOp) recordCPU(r *recorder, n *Node, part *Tensor, sg int, fused bool, push []uint32, grid [3]uint32) error {
	x, gamma, beta := n.In[0], n.In[1], n.In[2]
	spec := []uint32{uint32(sg), b32(o.hw%4 == 0), b32(o.silu)}
	if fused {
		return r.dispatch("groupnorm_cpu_fused", spec, push, grid, []*Tensor{x, gamma, beta}, []*Tensor{n.Out})
	}
	if err := r.dispatch("groupnorm_cpu_stats", spec[:2], push, grid, []*Tensor{x}, []*Tensor{part}); err != nil {
		return err
	}
	return r.dispatch("groupnorm_cpu", spec, push, grid, []*Tensor{x, gamma, beta, part}, []*Tensor{n.Out})
}

func (o layerNormOp) record(r *recorder, n *Node) error {
	push := []uint32{uint32(o.rows), uint32(o.d), f32(o.eps)}
	if c, ok := lnCPUFor(r.p.dev.Info(), o.rows, o.d); ok && r.cpuKernels() {
		push = append(push, uint32(c.rpw))
		spec := []uint32{uint32(c.sg), uint32(c.nc), b32(c.vec4), b32(c.laneRows)}
		return r.dispatch("layernorm_cpu", spec, push, r.grid(c.groups), n.In, []*Tensor{n.Out})
	}
	return r.dispatch("layernorm", []uint32{uint32(lnGroupSize(o.d))}, push, r.grid(o.rows), n.In, []*Tensor{n.Out})
}

// lnGroupSize is layernorm's workgroup width for rows of d elements: about
// four elements per invocation, 32 to 256 (layernorm.comp sizes its shared
// reduction for 256).
func lnGroupSize(d int) int {
	wg := 32
	for wg < 256 && wg*4 < d {
		wg *= 2
	}
	return wg
}

// lnCPU is how layernorm_cpu.comp splits a layernorm: a workgroup is one
// subgroup of sg lanes normalising rpw units in turn (groups workgroups in
// all), a unit being one row, or sg rows with laneRows (a row per lane);
// a lane keeps nc elements of a row in registers, quads of 4 where vec4.
type lnCPU struct {
	sg, nc, rpw, groups int
	vec4, laneRows      bool
}

// lnCPUFor picks layernorm_cpu.comp's split for rows x d, or says the
// device cannot run it (it needs subgroup sums and broadcasts). On lavapipe
// its cost is the storage accesses a subgroup issues, whatever the lanes
// they serve, and the workgroups it runs (about a microsecond each).
// Measured there, one thread, against layernorm.comp (the ratio is its
// time to this kernel's): the tiny UNet's 512 x 32 0.30 ms (18x), SD's
// 8192 x 320 36 ms (14x), 512 x 1280 9.7 ms (9x), CLIP's 154 x 768 2.4 ms
// (8x), 65537 x 3 3.9 ms (180x), and rows wider than the register cache
// still about 2x (64 x 4227 15 ms, 64 x 8192 22 ms, 4 x 8192 1.7 ms), so no
// shape is left to layernorm.comp.
//
//   - Rows of up to 32 elements (quads) get a row per lane: per subgroup of
//     sg such rows that is one access per element (quad), where a row per
//     subgroup leaves lanes idle and adds two subgroup sums per row. A row
//     per lane ran 2048 x 16 in 0.59 ms against 1.23, 2048 x 128 (32
//     quads) in the same time, 2048 x 256 in 8.1 ms against 7.5.
//   - Longer rows keep up to 64 elements (quads) per lane in registers,
//     rows up to 2048 wide with vec4: past them every pass rereads the row
//     and the last one gamma and beta too (512 x 1280 ran 25.6 ms with 16,
//     15.3 with 32, 9.8 with 64). The cache is unrolled code, so every row
//     width compiles its own pipeline, a bigger one the wider the row.
//   - A workgroup takes about rows/32 units: gamma and beta are loaded once
//     per workgroup and each workgroup has its fixed cost (SD's 8192 x 320
//     ran 69 ms with 2 rows per workgroup, 38 with 32), while 32 workgroups
//     still give a many-core CPU's threads something to share.
//
// GPUs run it only in tests (the "cpu" family forced), where 3 x 64 vec4
// per lane would spill and compile for long: there the register cache
// stops at 8 (longer rows stream).
func lnCPUFor(info vk.DeviceInfo, rows, d int) (lnCPU, bool) {
	sg, ok := cpuSubgroup(info, 64, "arithmetic", "ballot")
	if !ok {
		return lnCPU{}, false
	}
	c := lnCPU{sg: sg, vec4: d%4 == 0}
	n := d // elements or quads per row
	if c.vec4 {
		n = d / 4
	}
	laneMax, maxNC := 32, 64
	if info.Type != "cpu" {
		laneMax, maxNC = 8, 8
	}
	units := rows
	if n <= laneMax {
		c.laneRows, c.nc = true, n
		units = ceilDiv(rows, sg)
	} else {
		c.nc = min(maxNC, ceilDiv(n, sg))
	}
	c.rpw = max(1, units/32)
	c.groups = ceilDiv(units, c.rpw)
	return c, true
}

// normScratchID keys the program's groupnorm scratch in Program.locs; graph
// tensor ids are never negative, so it cannot collide with one.
const normScratchID = -1

// normScratch returns a tensor outside the graph for groupnorm's chunk
// statistics. They live only between the two dispatches of one node, so
// every groupnorm of a program shares one buffer sized for the largest; the
// recorder's hazard tracking orders the reuse like any other tensor. The
// buffer is owned by the program (closed, poisoned and counted with it).
func (r *recorder) normScratch(floats int) (*Tensor, error) {
	t := &Tensor{id: normScratchID, shape: []int{floats}, kind: Activation, name: "groupnorm scratch"}
	if l, ok := r.p.locs[normScratchID]; ok && l.len >= int64(floats)*4 {
		return t, nil
	}
	size := max(int64(floats)*4, normScratchBytes(r.p.g))
	if lim := int64(r.p.dev.Info().MaxStorageBufferRange); lim > 0 && size > lim {
		return nil, fmt.Errorf("scratch of %d bytes exceeds one storage binding (%d)", size, lim)
	}
	buf, err := r.p.dev.NewBuffer(size)
	if err != nil {
		return nil, fmt.Errorf("allocate %d bytes of scratch: %w", size, err)
	}
	r.p.bufs = append(r.p.bufs, buf)
	r.p.locs[normScratchID] = loc{buf: buf, off: 0, len: size}
	return t, nil
}

// normScratchBytes is the size of the groupnorm scratch a graph needs (0
// without groupnorms); Plan counts it, so planned and compiled memory agree.
func normScratchBytes(g *Graph) int64 {
	need := 0
	for _, nd := range g.Nodes {
		if gn, ok := nd.Op.(groupNormOp); ok {
			need = max(need, gn.scratchFloats())
		}
	}
	return int64(need) * 4
}
