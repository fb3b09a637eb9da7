package unet

import (
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/config"
)

// tinyConfig is sd-tiny's UNet, read from its config.json.
func tinyConfig(t *testing.T) Config {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadUNet(m.Root() + "/model/unet/config.json")
	if err != nil {
		t.Fatal(err)
	}
	u, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if u.Heads[0] != 8 || u.BlockOutChannels[2] != 64 || !u.FlipSinToCos || u.NormGroups != 8 {
		t.Fatalf("config not as the fixture README says: %+v", u)
	}
	return u
}

func weights(t *testing.T) graph.WeightSource {
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	w, closeFn, err := fixtures.Weights(m.Root() + "/model/unet/diffusion_pytorch_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return w
}

func TestLayerOrder(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("unet_per_layer")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	if err := c.Param("layer_order", &want); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(t)
	got := cfg.LayerNames()
	if len(got) != 16 || cfg.CrossAttentionLayers() != 16 {
		t.Fatalf("%d layers", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("layer %d: %s, want %s", i, got[i], want[i])
		}
	}
}

// unet_batch_timesteps on the CPU interpreter, with its intermediate module
// outputs checked so a mismatch names the module.
func TestUNetBatchTimestepsInterpret(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("unet_batch_timesteps")
	if err != nil {
		t.Fatal(err)
	}
	sample, sshape, err := c.InputTensor("sample")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cshape, err := c.InputTensor("encoder_hidden_states")
	if err != nil {
		t.Fatal(err)
	}
	var ts []float32
	if err := c.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	b := graph.NewBuilder()
	taps := Taps{}
	out := Build(b, tinyConfig(t), b.Input("sample", sshape...), b.Input("t", len(ts)), Same(b.Input("ctx", cshape...)), taps)
	b.Output("noise_pred", out)
	for name, tp := range taps {
		if _, ok := c.Outputs["intermediate/"+name]; ok {
			b.Output(name, tp)
		}
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.Interpret(g, map[string][]float32{"sample": sample, "t": ts, "ctx": ctx}, weights(t))
	if err != nil {
		t.Fatal(err)
	}
	for name := range c.Outputs {
		key := name
		if len(name) > 13 && name[:13] == "intermediate/" {
			key = name[13:]
		}
		got, ok := res[key]
		if !ok {
			t.Errorf("no tap for %s", name)
			continue
		}
		want, _, err := c.OutputTensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(got, want); e > 1e-5 {
			t.Errorf("%s: relative error %.3g", name, e)
		}
	}
}
