// Package graph builds tensor programs from a small op set and runs them:
// on the GPU through vk (Compile -> Program: memory planned, dispatches
// recorded once, replayed per call) or on the CPU through the plain-Go
// references in graph/ref (Interpret), which is how every op and every model
// is checked.
//
// A model is built once for given shapes with a Builder. Ops validate shapes
// when they are added; the first error sticks and is returned by Build, so
// model code can chain ops without checking each one.
package graph

import (
	"fmt"
	"strings"
)

// Kind says where a tensor's values come from.
type Kind int

const (
	// Activation tensors are computed by ops; the executor reuses their memory.
	Activation Kind = iota
	// Input tensors are set by the caller before each run and persist.
	Input
	// Weight tensors are loaded once when the program is compiled.
	Weight
	// Const tensors hold values given at build time (small tables).
	Const
)

// Tensor is a value in a graph: a shape and the node that makes it. All
// tensors are contiguous row-major float32 (the executor may store weights
// as float16; ops accumulate in float32).
type Tensor struct {
	id    int
	shape []int
	kind  Kind
	name  string // inputs, weights, outputs
	node  *Node  // nil for inputs, weights and consts
	view  *Tensor
	data  []float32 // consts
	b     *Builder
}

// Shape returns a copy of the tensor's shape.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	if i < 0 || i >= len(t.shape) {
		return 0
	}
	return t.shape[i]
}

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Numel is the number of elements.
func (t *Tensor) Numel() int { return numel(t.shape) }

// Name is the name of an input, weight or output tensor.
func (t *Tensor) Name() string { return t.name }

// ID is the tensor's index in its graph.
func (t *Tensor) ID() int { return t.id }

// root follows views to the tensor that owns the storage.
func (t *Tensor) root() *Tensor {
	for t.view != nil {
		t = t.view
	}
	return t
}

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func shapeStr(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Node is one op application.
type Node struct {
	Op    Op
	In    []*Tensor
	Out   *Tensor
	Scope string // the builder scope when the node was added (module path), for errors and profiles

	// segment is the checkpoint segment the node was added in (0: none);
	// see Builder.Checkpoint.
	segment int
}

// Op is implemented by every operation. Each op lives in its own file
// (op_<name>.go) with its builder method, its CPU evaluation through
// graph/ref and its GPU recording through its shader.
type Op interface {
	// Name is the op name, the same as its shader and ref function.
	Name() string
	// eval computes the output on the CPU from the inputs' values.
	eval(n *Node, in [][]float32) ([]float32, error)
	// record appends the op's dispatches to a GPU recording.
	record(r *recorder, n *Node) error
}

// Builder accumulates a graph.
type Builder struct {
	tensors []*Tensor
	nodes   []*Node
	outputs map[string]*Tensor
	outList []string
	names   map[string]*Tensor
	assigns []Assignment
	scope   []string
	err     error

	// Checkpoint segments: the open ones (innermost last), the last number
	// handed out, and whether Grad recomputes them (SetCheckpointing).
	segments      []int
	lastSegment   int
	checkpointing bool
}

// Assignment copies Src into the input Dst at the end of every run.
type Assignment struct{ Dst, Src *Tensor }

// NewBuilder starts an empty graph.
func NewBuilder() *Builder {
	return &Builder{outputs: map[string]*Tensor{}, names: map[string]*Tensor{}}
}

// Err returns the first error recorded while building.
func (b *Builder) Err() error { return b.err }

// Scope pushes a name (e.g. a module path) that prefixes errors and names,
// and returns a function that pops it: `defer b.Scope("down_blocks.0")()`.
func (b *Builder) Scope(name string) func() {
	b.scope = append(b.scope, name)
	return func() { b.scope = b.scope[:len(b.scope)-1] }
}

func (b *Builder) scopeName() string { return strings.Join(b.scope, ".") }

// Errorf records an error (the first one wins) with the current scope and
// returns it.
func (b *Builder) Errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if s := b.scopeName(); s != "" {
		msg = s + ": " + msg
	}
	err := fmt.Errorf("graph: %s", msg)
	if b.err == nil {
		b.err = err
	}
	return err
}

func (b *Builder) newTensor(kind Kind, name string, shape []int) *Tensor {
	t := &Tensor{id: len(b.tensors), shape: append([]int(nil), shape...), kind: kind, name: name, b: b}
	b.tensors = append(b.tensors, t)
	return t
}

// dummy stands in for the result of a failed op so that model code can go on
// chaining calls; Build reports the first error.
func (b *Builder) dummy(shape []int) *Tensor {
	for _, d := range shape {
		if d <= 0 {
			shape = []int{1}
			break
		}
	}
	return b.newTensor(Activation, "", shape)
}

func (b *Builder) check(ts ...*Tensor) bool {
	for _, t := range ts {
		if t == nil {
			b.Errorf("nil tensor")
			return false
		}
		if t.b != b {
			b.Errorf("tensor from another builder")
			return false
		}
	}
	return b.err == nil
}

func validShape(shape []int) bool {
	if len(shape) == 0 {
		return false
	}
	for _, d := range shape {
		if d <= 0 {
			return false
		}
	}
	return true
}

// Input declares a tensor the caller sets before each run.
func (b *Builder) Input(name string, shape ...int) *Tensor {
	return b.named(Input, name, shape)
}

// Weight declares a tensor loaded once at compile time by name.
func (b *Builder) Weight(name string, shape ...int) *Tensor {
	if s := b.scopeName(); s != "" {
		name = s + "." + name
	}
	if t, ok := b.names[name]; ok && t.kind == Weight {
		if !sameShape(t.shape, shape) {
			b.Errorf("weight %s declared as %s and %s", name, shapeStr(t.shape), shapeStr(shape))
		}
		return t
	}
	return b.named(Weight, name, shape)
}

func (b *Builder) named(kind Kind, name string, shape []int) *Tensor {
	if name == "" {
		b.Errorf("unnamed input or weight")
		return b.dummy(shape)
	}
	if !validShape(shape) {
		b.Errorf("%s: bad shape %s", name, shapeStr(shape))
		return b.dummy(shape)
	}
	if _, ok := b.names[name]; ok {
		b.Errorf("name %s used twice", name)
		return b.dummy(shape)
	}
	t := b.newTensor(kind, name, shape)
	b.names[name] = t
	return t
}

// Const adds a tensor with values fixed at build time.
func (b *Builder) Const(data []float32, shape ...int) *Tensor {
	if !validShape(shape) || numel(shape) != len(data) {
		b.Errorf("const: %d values for shape %s", len(data), shapeStr(shape))
		return b.dummy(shape)
	}
	t := b.newTensor(Const, "", shape)
	t.data = append([]float32(nil), data...)
	return t
}

// Output marks t as a result readable after each run.
func (b *Builder) Output(name string, t *Tensor) {
	if !b.check(t) {
		return
	}
	if _, ok := b.outputs[name]; ok {
		b.Errorf("output %s set twice", name)
		return
	}
	b.outputs[name] = t
	b.outList = append(b.outList, name)
}

// add appends a node computing a new tensor of the given shape.
func (b *Builder) add(op Op, shape []int, in ...*Tensor) *Tensor {
	if !validShape(shape) {
		b.Errorf("%s: bad output shape %s", op.Name(), shapeStr(shape))
		return b.dummy(shape)
	}
	out := b.newTensor(Activation, "", shape)
	n := &Node{Op: op, In: in, Out: out, Scope: b.scopeName()}
	if k := len(b.segments); k > 0 {
		n.segment = b.segments[k-1]
	}
	out.node = n
	b.nodes = append(b.nodes, n)
	return out
}

// Assign makes every run end by copying src into the input dst, so state
// that a program updates (parameters, optimizer moments, gradient
// accumulators) stays on the device between runs. Interpret writes the new
// values into its inputs map.
func (b *Builder) Assign(dst, src *Tensor) {
	if !b.check(dst, src) {
		return
	}
	if dst.kind != Input || !sameShape(dst.shape, src.shape) {
		b.Errorf("assign: destination must be an input of shape %s, got %s", shapeStr(src.shape), shapeStr(dst.shape))
		return
	}
	for _, a := range b.assigns {
		if a.Dst == dst {
			b.Errorf("assign: %s assigned twice", dst.name)
			return
		}
	}
	if src.root() == dst {
		return // assigning an input to itself changes nothing
	}
	b.assigns = append(b.assigns, Assignment{Dst: dst, Src: src})
}

// Reshape returns a view of t with a new shape of the same size; one
// dimension may be -1. No data moves.
func (b *Builder) Reshape(t *Tensor, shape ...int) *Tensor {
	if !b.check(t) {
		return b.dummy(shape)
	}
	shape = append([]int(nil), shape...)
	neg, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && neg < 0:
			neg = i
		case d <= 0:
			b.Errorf("reshape %s to %s: bad dimension", shapeStr(t.shape), shapeStr(shape))
			return b.dummy(shape)
		default:
			known *= d
		}
	}
	if neg >= 0 {
		if known == 0 || t.Numel()%known != 0 {
			b.Errorf("reshape %s to %s: sizes do not divide", shapeStr(t.shape), shapeStr(shape))
			return b.dummy(shape)
		}
		shape[neg] = t.Numel() / known
	}
	if numel(shape) != t.Numel() {
		b.Errorf("reshape %s to %s: %d elements vs %d", shapeStr(t.shape), shapeStr(shape), t.Numel(), numel(shape))
		return b.dummy(shape)
	}
	v := b.newTensor(Activation, "", shape)
	v.view = t
	return v
}

// Graph is a finished, validated graph.
type Graph struct {
	Tensors []*Tensor
	Nodes   []*Node
	Outputs map[string]*Tensor
	OutList []string // output names in the order they were marked
	Assigns []Assignment
}

// Build validates the graph and returns it, or the first build error.
func (b *Builder) Build() (*Graph, error) {
	if b.err != nil {
		return nil, b.err
	}
	if len(b.outputs) == 0 && len(b.assigns) == 0 {
		return nil, fmt.Errorf("graph: no outputs")
	}
	g := &Graph{Tensors: b.tensors, Nodes: b.nodes, Outputs: map[string]*Tensor{}, OutList: append([]string(nil), b.outList...), Assigns: append([]Assignment(nil), b.assigns...)}
	for k, v := range b.outputs {
		g.Outputs[k] = v
	}
	return g, nil
}

// Inputs lists the graph's input tensors.
func (g *Graph) Inputs() []*Tensor { return g.byKind(Input) }

// Weights lists the graph's weight tensors.
func (g *Graph) Weights() []*Tensor { return g.byKind(Weight) }

func (g *Graph) byKind(k Kind) []*Tensor {
	var out []*Tensor
	for _, t := range g.Tensors {
		if t.kind == k {
			out = append(out, t)
		}
	}
	return out
}
