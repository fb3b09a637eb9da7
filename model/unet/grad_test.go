package unet

import (
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
)

// gradCase runs loss = sum(unet(...) * G) and its input gradients on the
// CPU interpreter (the GPU backward kernels are checked against the same
// interpreter in package graph, and end to end by NeTI's training step),
// with the activations of resnets and transformers kept and recomputed.
func TestUNetGradFixtures(t *testing.T) {
	for _, tc := range []struct {
		name          string
		checkpointing bool
	}{
		{"plain", false},
		{"checkpointing", true},
	} {
		t.Run(tc.name, func(t *testing.T) { unetGradFixtures(t, tc.checkpointing) })
	}
}

func unetGradFixtures(t *testing.T, checkpointing bool) {
	m, _ := fixtures.SDTiny()
	cfg := tinyConfig(t)
	t.Run("unet_grad", func(t *testing.T) {
		c, err := m.Case("unet_grad")
		if err != nil {
			t.Fatal(err)
		}
		sample, sshape, _ := c.InputTensor("sample")
		ctx, cshape, _ := c.InputTensor("encoder_hidden_states")
		gw, _, _ := c.InputTensor("G")
		var ts []float32
		if err := c.Input("timesteps", &ts); err != nil {
			t.Fatal(err)
		}
		b := graph.NewBuilder()
		b.SetCheckpointing(checkpointing)
		x, e := b.Input("sample", sshape...), b.Input("ctx", cshape...)
		out := Build(b, cfg, x, b.Input("t", len(ts)), Same(e), nil)
		g := b.Input("G", out.Shape()...)
		loss := b.Sum(b.Reshape(b.Mul(out, g), out.Numel()), 0)
		grads := b.Grad(loss, nil, e, x)
		b.Output("loss", loss)
		b.Output("grad_encoder_hidden_states", grads[0])
		b.Output("grad_sample", grads[1])
		check(t, c, b, map[string][]float32{"sample": sample, "ctx": ctx, "t": ts, "G": gw}, "loss", "grad_encoder_hidden_states", "grad_sample")
	})
	t.Run("unet_per_layer_grad", func(t *testing.T) {
		c, err := m.Case("unet_per_layer_grad")
		if err != nil {
			t.Fatal(err)
		}
		sample, sshape, _ := c.InputTensor("sample")
		ctxs, cshape, _ := c.InputTensor("contexts") // [16, 1, 77, 32]
		gw, _, _ := c.InputTensor("G")
		var ts float32
		if err := c.Input("timestep", &ts); err != nil {
			t.Fatal(err)
		}
		b := graph.NewBuilder()
		b.SetCheckpointing(checkpointing)
		all := b.Input("contexts", cshape...)
		var ctx Context
		for l := 0; l < cshape[0]; l++ {
			ctx.Keys = append(ctx.Keys, b.Reshape(b.Slice(all, 0, l, l+1), cshape[1:]...))
		}
		out := Build(b, cfg, b.Input("sample", sshape...), b.Input("t", 1), ctx, nil)
		g := b.Input("G", out.Shape()...)
		loss := b.Sum(b.Reshape(b.Mul(out, g), out.Numel()), 0)
		b.Output("loss", loss)
		b.Output("grad_contexts", b.Grad(loss, nil, all)[0])
		check(t, c, b, map[string][]float32{"sample": sample, "contexts": ctxs, "t": {ts}, "G": gw}, "loss", "grad_contexts")
	})
}

func check(t *testing.T, c *fixtures.Case, b *graph.Builder, in map[string][]float32, outputs ...string) {
	t.Helper()
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := fixtures.SDTiny()
	w, closeFn, err := fixtures.Weights(m.Root() + "/model/unet/diffusion_pytorch_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	res, err := graph.Interpret(g, in, w)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range outputs {
		want, _, err := c.OutputTensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(res[name], want); e > 1e-4 {
			t.Errorf("%s: relative error %.3g", name, e)
		}
	}
}
