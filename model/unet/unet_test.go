package unet

import (
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
)

// TinyConfig is sd-tiny's UNet.
var tinyConfig = Config{
	InChannels: 4, OutChannels: 4,
	DownBlockTypes:    []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
	UpBlockTypes:      []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
	BlockOutChannels:  []int{32, 32, 64, 64},
	LayersPerBlock:    2,
	Heads:             []int{8, 8, 8, 8},
	CrossAttentionDim: 32,
	NormGroups:        8,
	NormEps:           1e-5,
	FlipSinToCos:      true,
	TransformerLayers: 1,
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
	got := tinyConfig.LayerNames()
	if len(got) != 16 || tinyConfig.CrossAttentionLayers() != 16 {
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
	out := Build(b, tinyConfig, b.Input("sample", sshape...), b.Input("t", len(ts)), Same(b.Input("ctx", cshape...)), taps)
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
