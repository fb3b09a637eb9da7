package graph

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/neti-project/neti/shaders"
	"github.com/neti-project/neti/vk"
)

// Options tune compilation.
type Options struct {
	// ArenaBytes caps one device buffer of the activation, weight and I/O
	// pools (0: the device's allocation limit, at most 1 GiB).
	ArenaBytes int64
	// Kernels picks kernel variants: "" chooses by device (CPU devices get
	// the barrier-free variants that lavapipe runs fastest), "gpu" or "cpu"
	// force one family (tests run both on the test device).
	Kernels string
	// Profile records a timestamp after every op so Profile() can say where
	// a run's time goes (costs a little; for benchmarks and tuning).
	Profile bool
	// Weights is the weight storage precision: "" or WeightsF32, or
	// WeightsF16 (float16 where the device has 16-bit storage; see
	// precision.go for which weights qualify).
	Weights string
	// Activations is the storage precision of activations, inputs and
	// outputs: "" or ActivationsF32, or ActivationsF16 (float16 where the
	// device has 16-bit storage and every kernel touching the tensor can
	// store it so; see precision.go).
	Activations string
}

// Stats describe a compiled program's memory and work.
type Stats struct {
	WeightBytes     int64 // weights and constants
	IOBytes         int64 // inputs and outputs (persist between runs)
	ActivationBytes int64 // planned peak of reused activation memory
	Buffers         int   // device buffers
	Dispatches      int
}

// PeakBytes is the planned peak device memory of one run.
func (s Stats) PeakBytes() int64 { return s.WeightBytes + s.IOBytes + s.ActivationBytes }

// loc is where a tensor's storage lives on the device.
type loc struct {
	buf      *vk.Buffer
	off, len int64
}

// Program is a graph compiled for one device: memory planned, weights
// uploaded, every dispatch recorded once. Run replays the recording.
type Program struct {
	opts    Options
	dev     *vk.Device
	g       *Graph
	locs    map[int]loc // by root tensor id
	bufs    []*vk.Buffer
	kernels map[string]*vk.Kernel
	rec     *vk.Recording
	stats   Stats
	align   int64
	half    map[int]bool // tensors stored as float16, by root tensor id
}

// Compile plans memory for g, uploads its weights (read through weights)
// and records all its dispatches. Shape errors were caught by the Builder;
// here a tensor too large for one storage-buffer binding, or memory the
// device cannot give, is an error naming the tensor.
func Compile(dev *vk.Device, g *Graph, weights WeightSource, opts Options) (p *Program, err error) {
	info := dev.Info()
	// The deferred cleanup holds its own reference: each "return nil, err"
	// below sets p to nil before it runs.
	prog := &Program{opts: opts, dev: dev, g: g, locs: map[int]loc{}, kernels: map[string]*vk.Kernel{}}
	p = prog
	defer func() {
		if err != nil {
			prog.Close()
			p = nil
		}
	}()
	lim := LimitsOf(info)
	lim.F16 = dev.F16() // the device's choice, which NETI_DISABLE_F16 can veto
	pools, stats, err := plan(g, lim, opts)
	if err != nil {
		return nil, err
	}
	p.align, p.stats, p.half = pools.align, stats, pools.half
	wpool, iopool, apool := pools.w, pools.io, pools.act
	for _, pl := range []*pool{wpool, iopool, apool} {
		if err := p.materialize(pl); err != nil {
			return nil, err
		}
	}
	if err := p.uploadWeights(weights); err != nil {
		return nil, err
	}
	if err := p.record(); err != nil {
		return nil, err
	}
	return p, nil
}

func (t *Tensor) describe() string {
	if t.name != "" {
		return t.name
	}
	if t.node != nil {
		return t.node.describe() + " output"
	}
	return fmt.Sprintf("tensor %d", t.id)
}

// Limits are the device limits memory planning must respect.
type Limits struct {
	Name                  string
	MaxAllocation         int64 // one buffer (0: no limit)
	MaxStorageBufferRange int64 // one binding (0: no limit)
	Align                 int64 // storage-buffer offset alignment
	F16                   bool  // 16-bit storage: weights may be stored as float16
	CPU                   bool  // a CPU device (lavapipe): models choose precision by it
}

// LimitsOf reads a device's limits.
func LimitsOf(info vk.DeviceInfo) Limits {
	alloc := int64(info.MaxAllocation)
	if b := int64(info.MaxBufferSize); b > 0 && (alloc == 0 || b < alloc) {
		alloc = b
	}
	return Limits{Name: info.Name, MaxAllocation: alloc, MaxStorageBufferRange: int64(info.MaxStorageBufferRange), Align: int64(info.MinStorageBufferOffsetAlignment),
		F16: info.Float16 && info.Storage16 && !vk.F16Disabled(), CPU: info.Type == "cpu"}
}

type pools struct {
	w, io, act *pool
	align      int64
	half       map[int]bool
}

// Plan computes a graph's memory plan for a device's limits without a
// device: the same numbers Compile would allocate (for --dry-run and
// full-size planning on small machines).
func Plan(g *Graph, l Limits, opts Options) (Stats, error) {
	_, st, err := plan(g, l, opts)
	return st, err
}

func plan(g *Graph, l Limits, opts Options) (pools, Stats, error) {
	if err := checkPrecision(opts); err != nil {
		return pools{}, Stats{}, err
	}
	half := map[int]bool{}
	if opts.Weights == WeightsF16 && l.F16 {
		half = halfWeights(g)
	}
	if opts.Activations == ActivationsF16 && l.F16 {
		for id := range halfActivations(g) {
			half[id] = true
		}
	}
	bytes := func(t *Tensor) int64 { return storageBytes(t.Numel(), half[t.id]) }
	align := l.Align
	if align < 16 {
		align = 16
	}
	arena := opts.ArenaBytes
	if arena <= 0 {
		arena = 1 << 30
	}
	if l.MaxAllocation > 0 && arena > l.MaxAllocation {
		arena = l.MaxAllocation
	}
	for _, t := range g.Tensors {
		if t.view != nil {
			continue
		}
		if sz := bytes(t); l.MaxStorageBufferRange > 0 && sz > l.MaxStorageBufferRange {
			return pools{}, Stats{}, fmt.Errorf("graph: tensor %s %s needs %d bytes, more than one storage binding allows on %s (%d)", t.describe(), shapeStr(t.shape), sz, l.Name, l.MaxStorageBufferRange)
		}
	}
	isOut := outputRoots(g)
	persistent := func(kinds ...Kind) (*pool, error) {
		pl := newPool(arena, align)
		for _, t := range g.Tensors {
			if t.view != nil {
				continue
			}
			keep := false
			for _, k := range kinds {
				keep = keep || t.kind == k
			}
			if kinds[0] == Input && t.kind == Activation && isOut[t.id] {
				keep = true
			}
			if keep {
				if _, err := pl.alloc(t.id, bytes(t)); err != nil {
					return nil, fmt.Errorf("graph: %s: %w", t.describe(), err)
				}
			}
		}
		return pl, nil
	}
	var ps pools
	var err error
	ps.align, ps.half = align, half
	if ps.w, err = persistent(Weight, Const); err != nil {
		return ps, Stats{}, err
	}
	if ps.io, err = persistent(Input); err != nil {
		return ps, Stats{}, err
	}
	if ps.act, err = planActivations(g, isOut, bytes, arena, align); err != nil {
		return ps, Stats{}, err
	}
	st := Stats{WeightBytes: ps.w.total(), IOBytes: ps.io.total(), ActivationBytes: ps.act.total()}
	for _, pl := range []*pool{ps.w, ps.io, ps.act} {
		for _, a := range pl.arenas {
			if a.high > 0 {
				st.Buffers++
			}
		}
	}
	if sz := normScratchBytes(g); sz > 0 { // groupnorm's chunk statistics, allocated when recording
		st.ActivationBytes += sz
		st.Buffers++
	}
	return ps, st, nil
}

// outputRoots marks the storage of outputs and assignment sources: they
// keep their own memory (they must survive to the end of the run).
func outputRoots(g *Graph) map[int]bool {
	m := map[int]bool{}
	for _, o := range g.Outputs {
		m[o.root().id] = true
	}
	for _, a := range g.Assigns {
		m[a.Src.root().id] = true
	}
	return m
}

// planActivations assigns activation storage by liveness: a tensor's memory
// is free again after the last node that reads it (or a view of it).
func planActivations(g *Graph, isOut map[int]bool, bytes func(*Tensor) int64, arena, align int64) (*pool, error) {
	last := map[int]int{}
	for i, n := range g.Nodes {
		for _, t := range n.In {
			last[t.root().id] = i
		}
	}
	pl := newPool(arena, align)
	for i, n := range g.Nodes {
		out := n.Out
		if !isOut[out.id] {
			if _, err := pl.alloc(out.id, bytes(out)); err != nil {
				return nil, fmt.Errorf("graph: %s: %w", out.describe(), err)
			}
			if _, used := last[out.id]; !used {
				last[out.id] = i // dead value: free right after
			}
		}
		for _, t := range n.In {
			r := t.root()
			if r.kind == Activation && !isOut[r.id] && last[r.id] == i {
				pl.free(r.id)
			}
		}
		if last[out.id] == i && !isOut[out.id] {
			pl.free(out.id)
		}
	}
	return pl, nil
}

// materialize creates the device buffers of a pool and records where each
// of its tensors lives.
func (p *Program) materialize(pl *pool) error {
	bufs := make([]*vk.Buffer, len(pl.arenas))
	for i, a := range pl.arenas {
		if a.high == 0 {
			continue
		}
		b, err := p.dev.NewBuffer(a.high)
		if err != nil {
			return fmt.Errorf("graph: allocate %d bytes: %w", a.high, err)
		}
		bufs[i] = b
		p.bufs = append(p.bufs, b)
	}
	for id, pos := range pl.placed {
		p.locs[id] = loc{buf: bufs[pos.arena], off: pos.off, len: pos.size}
	}
	return nil
}

func (p *Program) uploadWeights(src WeightSource) error {
	for _, t := range p.g.Tensors {
		var data []float32
		switch t.kind {
		case Weight:
			if src == nil {
				return fmt.Errorf("graph: weight %s: no weight source", t.name)
			}
			v, err := src(t.name, t.Shape())
			if err != nil {
				return fmt.Errorf("graph: weight %s: %w", t.name, err)
			}
			if len(v) != t.Numel() {
				return fmt.Errorf("graph: weight %s: %d values for shape %s", t.name, len(v), shapeStr(t.shape))
			}
			data = v
		case Const:
			data = t.data
		default:
			continue
		}
		if err := p.write(t, data); err != nil {
			return err
		}
	}
	return nil
}

func (p *Program) write(t *Tensor, v []float32) error {
	l, ok := p.locs[t.root().id]
	if !ok {
		return fmt.Errorf("graph: %s has no storage", t.describe())
	}
	var b []byte
	if p.half[t.root().id] {
		b = make([]byte, storageBytes(len(v), true))
		// A model's weights are a billion values: convert on every core
		// (on one, an SD 1.5 generation on the H100 took 13 s with fp16
		// weights against 11 s with fp32; 12 s with this).
		chunks(len(v), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				binary.LittleEndian.PutUint16(b[2*i:], f16Bits(v[i]))
			}
		})
	} else {
		b = make([]byte, storageBytes(len(v), false))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	}
	if err := l.buf.Write(l.off, b); err != nil {
		return fmt.Errorf("graph: upload %s: %w", t.describe(), err)
	}
	return nil
}

// chunks runs fn over [0, n) split among the CPU cores when n is large.
func chunks(n int, fn func(lo, hi int)) {
	const grain = 1 << 18
	parts := min(runtime.NumCPU(), n/grain)
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < parts; i++ {
		lo, hi := i*n/parts, (i+1)*n/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// SetInput copies an input's values to the device; it persists until set
// again, so inputs that do not change between runs are set once.
func (p *Program) SetInput(name string, v []float32) error {
	for _, t := range p.g.Tensors {
		if t.kind == Input && t.name == name {
			if len(v) != t.Numel() {
				return fmt.Errorf("graph: input %s: %d values for shape %s", name, len(v), shapeStr(t.shape))
			}
			return p.write(t, v)
		}
	}
	return fmt.Errorf("graph: no input %q", name)
}

// Input reads an input's current values back (inputs updated by Assign
// change on the device at every run).
func (p *Program) Input(name string) ([]float32, error) {
	for _, t := range p.g.Tensors {
		if t.kind == Input && t.name == name {
			return p.read(t)
		}
	}
	return nil, fmt.Errorf("graph: no input %q", name)
}

// Run replays the recorded dispatches: one submit per call.
func (p *Program) Run() error {
	if err := p.rec.Submit(); err != nil {
		return fmt.Errorf("graph: run: %w", err)
	}
	return nil
}

// Output reads an output's values back.
func (p *Program) Output(name string) ([]float32, error) {
	t, ok := p.g.Outputs[name]
	if !ok {
		return nil, fmt.Errorf("graph: no output %q", name)
	}
	return p.read(t)
}

func (p *Program) read(t *Tensor) ([]float32, error) {
	l, ok := p.locs[t.root().id]
	if !ok {
		return nil, fmt.Errorf("graph: %s has no storage", t.describe())
	}
	half := p.half[t.root().id]
	b := make([]byte, storageBytes(t.Numel(), half))
	if err := l.buf.Read(l.off, b); err != nil {
		return nil, fmt.Errorf("graph: read %s: %w", t.describe(), err)
	}
	v := make([]float32, t.Numel())
	if half {
		for i := range v {
			v[i] = f16Value(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return v, nil
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// Stats reports planned memory and the dispatch count.
func (p *Program) Stats() Stats { return p.stats }

// Close releases the program's device objects.
func (p *Program) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if p.rec != nil {
		keep(p.rec.Close())
		p.rec = nil
	}
	names := make([]string, 0, len(p.kernels))
	for k := range p.kernels {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		keep(p.kernels[k].Close())
	}
	p.kernels = map[string]*vk.Kernel{}
	for _, b := range p.bufs {
		keep(b.Close())
	}
	p.bufs = nil
	return first
}

// record builds the command buffer: every node's dispatches with barriers
// only where a dispatch touches memory written (or read, for reuse) since
// the last barrier.
func (p *Program) record() error {
	rec, err := p.dev.NewRecording()
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	p.rec = rec
	r := &recorder{p: p, rec: rec}
	if len(p.g.Assigns) > 0 {
		// The previous run's assignment copies must be visible to this
		// run's dispatches.
		rec.Barrier()
	}
	if p.opts.Profile {
		rec.Timestamp("start")
	}
	for _, n := range p.g.Nodes {
		if err := n.Op.record(r, n); err != nil {
			return fmt.Errorf("graph: record %s: %w", n.describe(), err)
		}
		if p.opts.Profile {
			rec.Timestamp(profileLabel(n))
		}
	}
	if len(p.g.Assigns) > 0 {
		rec.Barrier()
		for _, a := range p.g.Assigns {
			src, dst := p.locs[a.Src.root().id], p.locs[a.Dst.id]
			rec.Copy(src.buf, src.off, dst.buf, dst.off, int64(a.Dst.Numel())*4)
		}
	}
	if err := rec.End(); err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	p.stats.Dispatches = rec.Dispatches()
	return nil
}

type span struct {
	buf      *vk.Buffer
	off, end int64
}

func (a span) overlaps(b span) bool { return a.buf == b.buf && a.off < b.end && b.off < a.end }

// recorder appends dispatches for ops and tracks hazards.
type recorder struct {
	p             *Program
	rec           *vk.Recording
	written, read []span
}

func (r *recorder) span(t *Tensor) (span, vk.Binding, error) {
	l, ok := r.p.locs[t.root().id]
	if !ok {
		return span{}, vk.Binding{}, fmt.Errorf("%s has no storage", t.describe())
	}
	return span{l.buf, l.off, l.off + l.len}, vk.Binding{Buf: l.buf, Offset: l.off, Size: l.len}, nil
}

// dispatch records one kernel run. ins are bound first, then outs, in
// order (binding i = i-th tensor). push words are uint32 (floats by their
// bits, see f32). groups beyond the device's per-dimension limit must be
// split by the caller (see grid).
//
// Where a bound tensor is stored as float16 the shader's _h variant runs,
// told which bindings hold float16 by its HALF_MASK constant (storage.glsl).
func (r *recorder) dispatch(shader string, spec []uint32, push []uint32, groups [3]uint32, ins, outs []*Tensor) error {
	var mask uint32
	for i, t := range append(append([]*Tensor(nil), ins...), outs...) {
		if r.p.half[t.root().id] {
			mask |= 1 << i
		}
	}
	if mask != 0 {
		if !shaders.HasHalf(shader) {
			return fmt.Errorf("kernel %s has no float16 variant for bindings %#b", shader, mask)
		}
		shader += shaders.HalfSuffix
	}
	k, err := r.kernel(shader, spec, mask, len(ins)+len(outs), 4*len(push))
	if err != nil {
		return err
	}
	var binds []vk.Binding
	var rs, ws []span
	for _, t := range ins {
		s, b, err := r.span(t)
		if err != nil {
			return err
		}
		rs = append(rs, s)
		binds = append(binds, b)
	}
	for _, t := range outs {
		s, b, err := r.span(t)
		if err != nil {
			return err
		}
		ws = append(ws, s)
		binds = append(binds, b)
	}
	hazard := false
	for _, s := range rs {
		for _, w := range r.written {
			hazard = hazard || s.overlaps(w)
		}
	}
	for _, s := range ws {
		for _, w := range r.written {
			hazard = hazard || s.overlaps(w)
		}
		for _, x := range r.read {
			hazard = hazard || s.overlaps(x)
		}
	}
	if hazard {
		r.rec.Barrier()
		r.written, r.read = r.written[:0], r.read[:0]
	}
	r.read = append(r.read, rs...)
	r.written = append(r.written, ws...)
	pb := make([]byte, 4*len(push))
	for i, w := range push {
		binary.LittleEndian.PutUint32(pb[4*i:], w)
	}
	return r.rec.Dispatch(k, binds, pb, groups[0], groups[1], groups[2])
}

// halfMaskID is storage.glsl's HALF_MASK constant_id.
const halfMaskID = 100

func (r *recorder) kernel(shader string, spec []uint32, halfMask uint32, bindings, pushSize int) (*vk.Kernel, error) {
	key := fmt.Sprintf("%s%v/%#x", shader, spec, halfMask)
	if k, ok := r.p.kernels[key]; ok {
		return k, nil
	}
	code, err := shaders.Load(shader)
	if err != nil {
		return nil, err
	}
	ks := vk.KernelSpec{Name: shader, SPIRV: code, Bindings: bindings, PushSize: pushSize, Spec: spec}
	if halfMask != 0 {
		ks.Spec = append(append([]uint32(nil), spec...), halfMask)
		ks.SpecIDs = make([]uint32, len(ks.Spec))
		for i := range spec {
			ks.SpecIDs[i] = uint32(i)
		}
		ks.SpecIDs[len(spec)] = halfMaskID
	}
	k, err := r.p.dev.NewKernel(ks)
	if err != nil {
		return nil, err
	}
	r.p.kernels[key] = k
	return k, nil
}

// grid spreads n workgroups over x and y so that neither exceeds the
// device limit; shaders recover the linear index with linearGroup().
func (r *recorder) grid(n int) [3]uint32 {
	lim := int(r.p.dev.Info().MaxWorkgroupCount[0])
	if lim <= 0 || lim > 65535 {
		lim = 65535
	}
	if n <= lim {
		return [3]uint32{uint32(n), 1, 1}
	}
	return [3]uint32{uint32(lim), uint32((n + lim - 1) / lim), 1}
}

// halfCount is the number of weights stored as float16.
func (p *Program) halfCount() int { return p.countHalf(true) }

// halfActivationCount is the number of other tensors stored as float16.
func (p *Program) halfActivationCount() int { return p.countHalf(false) }

func (p *Program) countHalf(weights bool) int {
	n := 0
	for _, t := range p.g.Tensors {
		if p.half[t.id] && (t.kind == Weight) == weights {
			n++
		}
	}
	return n
}

// cpuKernels says whether to use the variants tuned for CPU Vulkan
// devices: no shared-memory tiles, no barriers.
func (r *recorder) cpuKernels() bool {
	switch r.p.opts.Kernels {
	case "cpu":
		return true
	case "gpu":
		return false
	}
	return r.p.dev.Info().Type == "cpu"
}

func f32(v float32) uint32 { return math.Float32bits(v) }

func b32(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Poison fills every activation, input and output buffer with NaN, so a
// test can tell an element that a kernel never wrote from a computed one.
// Weights are untouched; inputs must be set again afterwards.
func (p *Program) Poison() error {
	weights := map[*vk.Buffer]bool{}
	for _, t := range p.g.Tensors {
		if t.kind == Weight || t.kind == Const {
			if l, ok := p.locs[t.id]; ok {
				weights[l.buf] = true
			}
		}
	}
	for _, b := range p.bufs {
		if weights[b] {
			continue
		}
		// A NaN both as one float32 and as two float16s.
		if err := b.Fill(0, b.Size(), 0x7fc07fc0); err != nil {
			return fmt.Errorf("graph: poison: %w", err)
		}
	}
	return nil
}

// OpTime is the time a run spent in one kind of op.
type OpTime struct {
	Op    string
	Count int
	Time  time.Duration
}

// Profile sums the last run's time per op kind, largest first (needs
// Options.Profile).
func (p *Program) Profile() ([]OpTime, error) {
	if !p.opts.Profile {
		return nil, fmt.Errorf("graph: program compiled without Options.Profile")
	}
	ts, err := p.rec.Timings()
	if err != nil {
		return nil, err
	}
	by := map[string]*OpTime{}
	for i := 1; i < len(ts); i++ {
		o := by[ts[i].Label]
		if o == nil {
			o = &OpTime{Op: ts[i].Label}
			by[ts[i].Label] = o
		}
		o.Count++
		o.Time += ts[i].Since - ts[i-1].Since
	}
	out := make([]OpTime, 0, len(by))
	for _, o := range by {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	return out, nil
}

// profileLabel names a node in profiles: the op, and with NETI_PROFILE_DETAIL=1
// its parameters (to find the expensive shapes).
func profileLabel(n *Node) string {
	if os.Getenv("NETI_PROFILE_DETAIL") == "1" {
		return fmt.Sprintf("%s%+v", n.Op.Name(), n.Op)
	}
	return n.Op.Name()
}
