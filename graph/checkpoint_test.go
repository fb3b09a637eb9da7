package graph

import (
	"math/rand"
	"strings"
	"testing"
)

// ckptCase builds a forward graph with checkpoint segments; the loss is
// sum(out * G) as in the grad cases.
type ckptCase struct {
	name  string
	build func(b *Builder) (out *Tensor, wrt []*Tensor)
}

// mlpBlock is a pre-norm residual MLP block (a transformer's feed-forward
// half) in its own checkpoint segment.
func mlpBlock(b *Builder, x *Tensor, d int, prefix string) *Tensor {
	defer b.Checkpoint()()
	h := b.LayerNorm(x, b.Input(prefix+"g", d), b.Input(prefix+"be", d), 1e-5)
	h = b.GELU(b.Linear(h, b.Input(prefix+"w1", 4*d, d), b.Input(prefix+"b1", 4*d)))
	h = b.Linear(h, b.Input(prefix+"w2", d, 4*d), nil)
	return b.Add(x, h)
}

func ckptCases() []ckptCase {
	return []ckptCase{
		{name: "mlp_chain", build: func(b *Builder) (*Tensor, []*Tensor) {
			x := b.Input("x", 2, 5, 8)
			h := x
			for _, p := range []string{"a.", "b.", "c."} {
				h = mlpBlock(b, h, 8, p)
			}
			return h, []*Tensor{x}
		}},
		{name: "attention_views", build: func(b *Builder) (*Tensor, []*Tensor) {
			// Self-attention over a [n, c, h, w] map: permutes and reshapes
			// (views of segment internals) inside the segment.
			x := b.Input("x", 1, 8, 3, 4)
			ctx := b.Input("ctx", 1, 5, 8)
			h := func() *Tensor {
				defer b.Checkpoint()()
				t := b.Reshape(b.Permute(b.GroupNorm(x, b.Input("gn.g", 8), b.Input("gn.b", 8), 2, 1e-5, false), 0, 2, 3, 1), 1, 12, 8)
				q := b.Linear(t, b.Input("wq", 8, 8), nil)
				k := b.Linear(ctx, b.Input("wk", 8, 8), nil)
				v := b.Linear(ctx, b.Input("wv", 8, 8), nil)
				a := b.Attention(q, k, v, 2, 0, false)
				return b.Add(x, b.Permute(b.Reshape(a, 1, 3, 4, 8), 0, 3, 1, 2))
			}()
			return b.Softmax(b.Reshape(h, 8, 12)), []*Tensor{x, ctx}
		}},
		{name: "resnet_conv", build: func(b *Builder) (*Tensor, []*Tensor) {
			// A UNet resnet: the second norm's backward needs the first
			// conv's output, which is recomputed. Conv weights are inputs
			// outside wrt: conv2d has input gradients only (frozen
			// networks).
			x := b.Input("x", 2, 4, 5, 5)
			h := x
			for _, p := range []string{"r0.", "r1."} {
				func() {
					defer b.Checkpoint()()
					t := b.GroupNorm(h, b.Input(p+"g1", 4), b.Input(p+"be1", 4), 2, 1e-5, true)
					t = b.Conv2d(t, b.Input(p+"w1", 4, 4, 3, 3), b.Input(p+"b1", 4), Pad(1, 1))
					t = b.GroupNorm(t, b.Input(p+"g2", 4), b.Input(p+"be2", 4), 2, 1e-5, true)
					t = b.Conv2d(t, b.Input(p+"w2", 4, 4, 3, 3), b.Input(p+"b2", 4), Pad(1, 1))
					h = b.Add(h, t)
				}()
			}
			return h, []*Tensor{x}
		}},
		{name: "nested_and_escaping", build: func(b *Builder) (*Tensor, []*Tensor) {
			// An inner segment inside an outer one, an internal tensor
			// read after its segment (a skip connection), and a tensor
			// that needs no gradient computed inside a segment.
			x, s := b.Input("x", 3, 6), b.Input("s", 3, 6)
			var skip, h *Tensor
			func() {
				defer b.Checkpoint()()
				skip = b.SiLU(b.Mul(x, x))
				func() {
					defer b.Checkpoint()()
					h = b.Exp(b.Scale(skip, 0.5))
				}()
				h = b.Mul(h, b.Sqrt(b.Mul(s, s)))
				h = b.Reshape(h, 18)
			}()
			return b.Add(b.Reshape(h, 3, 6), b.Mul(skip, skip)), []*Tensor{x}
		}},
	}
}

// ckptGraph builds c's loss and gradients with checkpointing on or off.
func ckptGraph(t *testing.T, c ckptCase, on bool) (*Graph, []string) {
	t.Helper()
	b := NewBuilder()
	b.SetCheckpointing(on)
	out, wrt := c.build(b)
	g := b.Input("G", out.Shape()...)
	loss := b.Sum(b.Reshape(b.Mul(out, g), out.Numel()), 0)
	b.Output("loss", loss)
	var names []string
	for i, gr := range b.Grad(loss, nil, wrt...) {
		b.Output("grad_"+wrt[i].Name(), gr)
		names = append(names, "grad_"+wrt[i].Name())
	}
	gr, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return gr, names
}

// Gradients with checkpointing equal those without: on the interpreter,
// and on the device against the interpreter without checkpointing.
func TestCheckpointGradients(t *testing.T) {
	for _, c := range ckptCases() {
		t.Run(c.name, func(t *testing.T) {
			plain, names := ckptGraph(t, c, false)
			ck, _ := ckptGraph(t, c, true)
			if len(ck.Nodes) <= len(plain.Nodes) {
				t.Fatalf("checkpointing added no recomputation: %d nodes vs %d", len(ck.Nodes), len(plain.Nodes))
			}
			in := gradInputs(plain, gradCase{}, rand.New(rand.NewSource(3)))
			want, err := Interpret(plain, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Interpret(ck, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			outs := append([]string{"loss"}, names...)
			for _, name := range outs {
				if e := RelErr(got[name], want[name]); !(e <= 1e-4) {
					t.Errorf("CPU %s: checkpointed vs plain relative error %.3g", name, e)
				}
			}
			p, err := Compile(device(t), ck, nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			runPoisoned(t, p, in)
			for _, name := range outs {
				g, err := p.Output(name)
				if err != nil {
					t.Fatal(err)
				}
				if e := RelErr(g, want[name]); !(e <= 1e-4) {
					t.Errorf("GPU %s: checkpointed vs plain CPU relative error %.3g", name, e)
				}
			}
		})
	}
}

// Every recomputed node is read by the backward (unused copies, like a
// segment's final residual add, are pruned), and forward nodes of a
// segment are no longer read by any backward node.
func TestCheckpointGraphShape(t *testing.T) {
	for _, c := range ckptCases() {
		t.Run(c.name, func(t *testing.T) {
			g, _ := ckptGraph(t, c, true)
			reads := map[int]int{}
			for _, n := range g.Nodes {
				for _, in := range n.In {
					reads[in.root().id]++
				}
			}
			recomputed, backward := 0, false
			for _, n := range g.Nodes {
				if strings.HasPrefix(n.Scope, "recompute(") {
					recomputed++
					if reads[n.Out.id] == 0 {
						t.Errorf("recomputed %s is never read", n.describe())
					}
				}
			}
			if recomputed == 0 {
				t.Fatal("nothing recomputed")
			}
			// The plain graph's backward reads segment internals; the
			// checkpointed one must not (except tensors that escape their
			// segment, read after it by forward nodes anyway).
			fwdEnd := 0
			for i, n := range g.Nodes {
				if strings.HasPrefix(n.Scope, "recompute(") {
					fwdEnd = i
					break
				}
			}
			escapes := map[int]bool{}
			for _, n := range g.Nodes[:fwdEnd] {
				for _, in := range n.In {
					if p := in.root().node; p != nil && p.segment != 0 && p.segment != n.segment {
						escapes[in.root().id] = true
					}
				}
			}
			for _, n := range g.Nodes[fwdEnd:] {
				backward = true
				for _, in := range n.In {
					r := in.root()
					if p := r.node; p != nil && p.segment != 0 && !escapes[r.id] {
						t.Errorf("%s reads %s, an internal of a checkpoint segment", n.describe(), r.describe())
					}
				}
			}
			if !backward {
				t.Fatal("no backward nodes")
			}
		})
	}
}

// Checkpointing lowers the planned activation peak of a deep chain, and
// changes nothing in a graph without segments.
func TestCheckpointPlannedPeak(t *testing.T) {
	deep := func(segments bool) func(b *Builder) (*Tensor, []*Tensor) {
		return func(b *Builder) (*Tensor, []*Tensor) {
			x := b.Input("x", 4, 64, 32)
			h := x
			for i := 0; i < 8; i++ {
				p := string(rune('a'+i)) + "."
				if segments {
					h = mlpBlock(b, h, 32, p)
				} else {
					h = b.Add(h, b.Linear(b.GELU(h), b.Input(p+"w", 32, 32), nil))
				}
			}
			return h, []*Tensor{x}
		}
	}
	plan := func(c ckptCase, on bool) (Stats, int) {
		g, _ := ckptGraph(t, c, on)
		st, err := Plan(g, Limits{Align: 16}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st, len(g.Nodes)
	}
	for _, tc := range []struct {
		name     string
		segments bool
	}{
		{"segments", true},
		{"no_segments", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ckptCase{name: tc.name, build: deep(tc.segments)}
			off, offNodes := plan(c, false)
			on, onNodes := plan(c, true)
			t.Logf("activations planned: %d bytes without checkpointing, %d with", off.ActivationBytes, on.ActivationBytes)
			if !tc.segments {
				if on != off || onNodes != offNodes {
					t.Errorf("no segments: plan %+v (%d nodes) with checkpointing, %+v (%d nodes) without", on, onNodes, off, offNodes)
				}
				return
			}
			// 8 blocks each keep a [4,64,128] GELU input and output and
			// more without checkpointing; with it, about one block's worth
			// plus the 8 block inputs.
			if !(on.ActivationBytes*2 < off.ActivationBytes) {
				t.Errorf("activations: %d bytes with checkpointing, %d without: expected less than half", on.ActivationBytes, off.ActivationBytes)
			}
		})
	}
}
