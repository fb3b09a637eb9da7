package sd

import (
	"fmt"

	"github.com/neti-project/neti/graph"
)

// Plan is a device-free estimate of what compiling a graph will need, so
// that --dry-run, the tiled-decode decision and benchmarks can report
// memory for models larger than the machine's device.
//
// graph.Compile's planner is not callable without a device, so this
// repeats its rules (persistent weights, inputs and outputs; activations
// freed after their last reader) without its alignment and first-fit
// fragmentation: ActivationBytes is a lower bound, usually within a few
// percent of the compiled program's Stats.
type Plan struct {
	WeightBytes     int64
	IOBytes         int64
	ActivationBytes int64
	Largest         int64  // bytes of the largest single tensor
	LargestName     string // what it is, for messages
}

// PeakBytes is the planned peak device memory.
func (p Plan) PeakBytes() int64 { return p.WeightBytes + p.IOBytes + p.ActivationBytes }

// Add sums two plans (programs resident at the same time).
func (p Plan) Add(q Plan) Plan {
	out := Plan{WeightBytes: p.WeightBytes + q.WeightBytes, IOBytes: p.IOBytes + q.IOBytes,
		ActivationBytes: p.ActivationBytes + q.ActivationBytes, Largest: p.Largest, LargestName: p.LargestName}
	if q.Largest > p.Largest {
		out.Largest, out.LargestName = q.Largest, q.LargestName
	}
	return out
}

// PlanGraph estimates g's memory.
func PlanGraph(g *graph.Graph) Plan {
	var p Plan
	size := func(t *graph.Tensor) int64 { return int64(t.Numel()) * 4 }
	seen := func(t *graph.Tensor, what string) {
		if s := size(t); s > p.Largest {
			p.Largest, p.LargestName = s, what
		}
	}
	made := map[int]*graph.Node{} // output tensor id -> node
	for _, n := range g.Nodes {
		made[n.Out.ID()] = n
	}
	known := map[int]bool{}
	for _, t := range g.Weights() {
		p.WeightBytes += size(t)
		known[t.ID()] = true
		seen(t, "weight "+t.Name())
	}
	for _, t := range g.Inputs() {
		p.IOBytes += size(t)
		known[t.ID()] = true
		seen(t, "input "+t.Name())
	}
	// A node input that is neither made by a node, nor an input, nor a
	// weight is a reshape view (or a small constant). Views are attributed
	// to the latest earlier node output of the same size, which is where
	// model code takes them from.
	root := map[int]int{}
	resolve := func(t *graph.Tensor) int {
		id := t.ID()
		if _, ok := made[id]; ok || known[id] {
			return id
		}
		if r, ok := root[id]; ok {
			return r
		}
		r := id
		best := -1
		for oid := range made {
			if oid < id && oid > best && made[oid].Out.Numel() == t.Numel() {
				best = oid
			}
		}
		if best >= 0 {
			r = best
		}
		root[id] = r
		return r
	}
	output := map[int]bool{}
	for _, name := range g.OutList {
		t := g.Outputs[name]
		r := resolve(t)
		if !output[r] && !known[r] {
			p.IOBytes += size(t)
		}
		output[r] = true
	}
	last := map[int]int{}
	for i, n := range g.Nodes {
		for _, t := range n.In {
			last[resolve(t)] = i
		}
	}
	var live, peak int64
	freed := map[int]bool{}
	free := func(id int) {
		if src, ok := made[id]; ok && !output[id] && !freed[id] {
			freed[id] = true
			live -= size(src.Out)
		}
	}
	for i, n := range g.Nodes {
		id := n.Out.ID()
		seen(n.Out, n.Scope+" "+n.Op.Name()+" output")
		if !output[id] {
			live += size(n.Out)
			peak = max(peak, live)
			if _, used := last[id]; !used {
				last[id] = i // a dead value is freed right after
			}
		}
		for _, t := range n.In {
			if r := resolve(t); last[r] == i {
				free(r)
			}
		}
		if last[id] == i {
			free(id)
		}
	}
	p.ActivationBytes = peak
	return p
}

// PlanTextEncoder, PlanUNet and PlanDecoder estimate the programs the
// Compile* calls would make.
func (m *Model) PlanTextEncoder(o TextEncoderOptions) (Plan, error) {
	g, err := m.textGraph(o)
	if err != nil {
		return Plan{}, err
	}
	return PlanGraph(g), nil
}

// PlanUNet estimates a UNet program.
func (m *Model) PlanUNet(o UNetOptions) (Plan, error) {
	g, err := m.unetGraph(&o)
	if err != nil {
		return Plan{}, err
	}
	return PlanGraph(g), nil
}

// PlanDecoder estimates the decoder for an h x w latent with o, tiled when
// CompileDecoder would tile; the tile chosen is returned too (0 if none).
func (m *Model) PlanDecoder(h, w int, o DecoderOptions, lim Limits) (Plan, Tiling, error) {
	t, err := m.chooseTiling(h, w, o, lim)
	if err != nil {
		return Plan{}, Tiling{}, err
	}
	g, err := m.decoderGraph(t.H, t.W)
	if err != nil {
		return Plan{}, Tiling{}, err
	}
	return PlanGraph(g), t, nil
}

// MiB formats a byte count for messages.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
