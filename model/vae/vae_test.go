package vae

import (
	"strings"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/config"
)

func tinyConfig(t *testing.T) Config {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadVAE(m.Root() + "/model/vae/config.json")
	if err != nil {
		t.Fatal(err)
	}
	v := FromConfig(c)
	if v.LayersPerBlock != 2 || v.NormGroups != 8 || v.ScalingFactor != 0.18215 {
		t.Fatalf("config not as the fixture README says: %+v", v)
	}
	return v
}

func weights(t *testing.T) graph.WeightSource {
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	w, closeFn, err := fixtures.Weights(m.Root() + "/model/vae/diffusion_pytorch_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return w
}

func check(t *testing.T, c *fixtures.Case, res map[string][]float32, outputs ...string) {
	t.Helper()
	for _, name := range outputs {
		want, _, err := c.OutputTensor(name)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := res[strings.TrimPrefix(name, "intermediate/")]
		if !ok {
			t.Errorf("no output %s", name)
			continue
		}
		if e := graph.RelErr(got, want); e > 1e-5 {
			t.Errorf("%s: relative error %.3g", name, e)
		}
	}
}

func TestDecodeInterpret(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("vae_decode")
	if err != nil {
		t.Fatal(err)
	}
	z, shape, err := c.InputTensor("z")
	if err != nil {
		t.Fatal(err)
	}
	b := graph.NewBuilder()
	taps := Taps{}
	b.Output("image", Decode(b, tinyConfig(t), b.Input("z", shape...), taps))
	for k, v := range taps {
		b.Output(k, v)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.Interpret(g, map[string][]float32{"z": z}, weights(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range c.Outputs {
		names = append(names, k)
	}
	check(t, c, res, names...)
}

func TestEncodeInterpret(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("vae_encode")
	if err != nil {
		t.Fatal(err)
	}
	x, shape, err := c.InputTensor("x")
	if err != nil {
		t.Fatal(err)
	}
	b := graph.NewBuilder()
	taps := Taps{}
	b.Output("moments", Encode(b, tinyConfig(t), b.Input("x", shape...), taps))
	for k, v := range taps {
		b.Output(k, v)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.Interpret(g, map[string][]float32{"x": x}, weights(t))
	if err != nil {
		t.Fatal(err)
	}
	check(t, c, res, "moments", "intermediate/encoder.down_blocks.2", "intermediate/encoder.down_blocks.3", "intermediate/encoder.mid_block", "intermediate/encoder.conv_out", "intermediate/quant_conv")
}
