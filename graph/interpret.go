package graph

import (
	"fmt"
	"math"
)

// WeightSource supplies a weight's values by name; the graph checks the
// count against the declared shape.
type WeightSource func(name string, shape []int) ([]float32, error)

// Interpret runs g on the CPU with the graph/ref implementations of every op
// (float64 accumulation). It is the executable specification the GPU path
// is tested against, and slow by design.
func Interpret(g *Graph, inputs map[string][]float32, weights WeightSource) (map[string][]float32, error) {
	vals := make([][]float32, len(g.Tensors))
	for _, t := range g.Tensors {
		switch t.kind {
		case Input:
			v, ok := inputs[t.name]
			if !ok {
				return nil, fmt.Errorf("graph: input %s not given", t.name)
			}
			if len(v) != t.Numel() {
				return nil, fmt.Errorf("graph: input %s: %d values for shape %s", t.name, len(v), shapeStr(t.shape))
			}
			vals[t.id] = v
		case Weight:
			if weights == nil {
				return nil, fmt.Errorf("graph: weight %s: no weight source", t.name)
			}
			v, err := weights(t.name, t.Shape())
			if err != nil {
				return nil, fmt.Errorf("graph: weight %s: %w", t.name, err)
			}
			if len(v) != t.Numel() {
				return nil, fmt.Errorf("graph: weight %s: %d values for shape %s", t.name, len(v), shapeStr(t.shape))
			}
			vals[t.id] = v
		case Const:
			vals[t.id] = t.data
		}
	}
	get := func(t *Tensor) []float32 { return vals[t.root().id] }
	for _, n := range g.Nodes {
		in := make([][]float32, len(n.In))
		for i, t := range n.In {
			in[i] = get(t)
			if in[i] == nil {
				return nil, fmt.Errorf("graph: %s: input %d has no value", n.describe(), i)
			}
		}
		out, err := n.Op.eval(n, in)
		if err != nil {
			return nil, fmt.Errorf("graph: %s: %w", n.describe(), err)
		}
		if len(out) != n.Out.Numel() {
			return nil, fmt.Errorf("graph: %s: produced %d values for shape %s", n.describe(), len(out), shapeStr(n.Out.shape))
		}
		vals[n.Out.id] = out
	}
	res := map[string][]float32{}
	for name, t := range g.Outputs {
		res[name] = append([]float32(nil), get(t)...)
	}
	for _, a := range g.Assigns {
		inputs[a.Dst.name] = append([]float32(nil), get(a.Src)...)
	}
	return res, nil
}

func (n *Node) describe() string {
	if n.Scope != "" {
		return n.Scope + ": " + n.Op.Name()
	}
	return n.Op.Name()
}

// RelErr is the relative Frobenius error ||got-want|| / ||want|| (the
// project's comparison for every op and model test). NaN or Inf in got
// gives +Inf; an all-zero want compares absolutely.
func RelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1)
		}
		num += (g - w) * (g - w)
		den += w * w
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// MaxAbsDiff is max |got-want| (NaN gives +Inf).
func MaxAbsDiff(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = math.Max(m, d)
	}
	return m
}
