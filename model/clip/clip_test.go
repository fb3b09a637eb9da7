package clip

import (
	"fmt"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/config"
	"github.com/neti-project/neti/model/safetensors"
)

func tinyConfig(t *testing.T) Config {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadCLIPText(m.Root() + "/model/text_encoder/config.json")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Hidden: 32, Intermediate: 37, Layers: 3, Heads: 4, MaxPositions: 77, Vocab: 1000, Act: "quick_gelu", Eps: 1e-5}
	if got := FromConfig(c); got != want {
		t.Fatalf("FromConfig = %+v, want %+v", got, want)
	}
	return want
}

func tinyWeights(t *testing.T) graph.WeightSource {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(m.Root() + "/model/text_encoder/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func(name string, shape []int) ([]float32, error) {
		v, s, err := f.Float32(name)
		if err != nil {
			return nil, err
		}
		if fmt.Sprint(s) != fmt.Sprint(shape) {
			return nil, fmt.Errorf("%s: file has %v, want %v", name, s, shape)
		}
		return v, nil
	}
}

func floats(v []int64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// The CPU interpretation of the encoder graph matches transformers on the
// sd-tiny text encoder, layer by layer.
func TestTextEncoderIDsInterpret(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("text_encoder_ids")
	if err != nil {
		t.Fatal(err)
	}
	ids, shape, err := c.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	b := graph.NewBuilder()
	out := Build(b, tinyConfig(t), b.Input("ids", shape...), nil, nil)
	b.Output("last_hidden_state", out.Hidden)
	for i, l := range out.Layers {
		b.Output(fmt.Sprint("layer", i), l)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.Interpret(g, map[string][]float32{"ids": floats(ids)}, tinyWeights(t))
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := c.OutputTensor("last_hidden_state")
	if err != nil {
		t.Fatal(err)
	}
	if e := graph.RelErr(res["last_hidden_state"], want); e > 1e-5 {
		t.Errorf("last_hidden_state: relative error %.3g", e)
	}
	hs, _, err := c.OutputTensor("hidden_states")
	if err != nil {
		t.Fatal(err)
	}
	n := len(hs) / 4
	for i := 0; i < 4; i++ {
		if e := graph.RelErr(res[fmt.Sprint("layer", i)], hs[i*n:(i+1)*n]); e > 1e-5 {
			t.Errorf("hidden_states[%d]: relative error %.3g", i, e)
		}
	}
}

// Injection replaces the token embedding at pos before the position
// embedding, as in text_encoder_inject (forward part).
func TestTextEncoderInjectInterpret(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("text_encoder_inject")
	if err != nil {
		t.Fatal(err)
	}
	ids, shape, err := c.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	vec, _, err := c.InputTensor("vec")
	if err != nil {
		t.Fatal(err)
	}
	var pos int
	if err := c.Input("pos", &pos); err != nil {
		t.Fatal(err)
	}
	seq, d := shape[1], tinyConfig(t).Hidden
	inject := make([]float32, seq*d)
	mask := make([]float32, seq)
	copy(inject[pos*d:], vec)
	mask[pos] = 1
	b := graph.NewBuilder()
	out := Build(b, tinyConfig(t), b.Input("ids", shape...), b.Input("inject", 1, seq, d), b.Input("mask", 1, seq, 1))
	b.Output("y", out.Hidden)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.Interpret(g, map[string][]float32{"ids": floats(ids), "inject": inject, "mask": mask}, tinyWeights(t))
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := c.OutputTensor("last_hidden_state")
	if e := graph.RelErr(res["y"], want); e > 1e-5 {
		t.Errorf("relative error %.3g", e)
	}
}

// text_encoder_inject's gradient: d sum(last_hidden_state * G) / d vec,
// through the injected token embedding (how training reaches the mapper).
func TestTextEncoderInjectGrad(t *testing.T) {
	m, _ := fixtures.SDTiny()
	c, err := m.Case("text_encoder_inject")
	if err != nil {
		t.Fatal(err)
	}
	ids, shape, _ := c.InputInts("input_ids")
	vec, _, _ := c.InputTensor("vec")
	gw, _, _ := c.InputTensor("G")
	var pos int
	if err := c.Input("pos", &pos); err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(t)
	seq, d := shape[1], cfg.Hidden
	mask := make([]float32, seq)
	mask[pos] = 1
	b := graph.NewBuilder()
	v := b.Input("vec", d)
	out := Build(b, cfg, b.Input("ids", shape...), b.Reshape(v, 1, 1, d), b.Input("mask", 1, seq, 1))
	g := b.Input("G", out.Hidden.Shape()...)
	loss := b.Sum(b.Reshape(b.Mul(out.Hidden, g), out.Hidden.Numel()), 0)
	b.Output("loss", loss)
	b.Output("grad_vec", b.Grad(loss, nil, v)[0])
	gr, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := graph.Interpret(gr, map[string][]float32{"ids": floats(ids), "vec": vec, "mask": mask, "G": gw}, tinyWeights(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"loss", "grad_vec"} {
		want, _, _ := c.OutputTensor(name)
		if e := graph.RelErr(res[name], want); e > 1e-4 {
			t.Errorf("%s: relative error %.3g", name, e)
		}
	}
}
