package neti

import (
	"math"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
)

// TestTextEncoderFixture runs neti_text_encoder: the mapper's token
// embedding at the placeholder and the bypass before the final layer norm,
// for five (t, layer, truncation) specs batched in one program run.
func TestTextEncoderFixture(t *testing.T) {
	c := tinyConcept(t)
	m, _ := fixtures.SDTiny()
	fc, err := m.Case("neti_text_encoder")
	if err != nil {
		t.Fatal(err)
	}
	ids64, shape, err := fc.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	var pos, placeholder int
	var specs [][3]*float64
	if err := fc.Input("placeholder_position", &pos); err != nil {
		t.Fatal(err)
	}
	if err := fc.Input("placeholder_token_id", &placeholder); err != nil {
		t.Fatal(err)
	}
	if err := fc.Input("specs_t_l_truncation", &specs); err != nil {
		t.Fatal(err)
	}
	n, seq, d := len(specs), shape[1], c.Arch.TextWidth
	ids := make([]float32, 0, n*seq)
	for i := 0; i < n; i++ {
		for _, id := range ids64 {
			if int(id) == placeholder {
				id = 0 // the placeholder row is outside the table and replaced anyway
			}
			ids = append(ids, float32(id))
		}
	}
	inject := make([]float32, n*seq*d)
	mask := make([]float32, n*seq)
	bypass := make([]float32, n*seq*d)
	wantMapper, _, _ := fc.OutputTensor("mapper_output")
	for i, s := range specs {
		trunc := -1
		if s[2] != nil {
			trunc = int(*s[2])
		}
		tok, byp := c.Mapper(*s[0], *s[1], trunc)
		if e := graph.RelErr(append(append([]float32{}, tok...), byp...), wantMapper[i*2*d:(i+1)*2*d]); e > 1e-5 {
			t.Errorf("spec %d: mapper relative error %.3g", i, e)
		}
		row := (i*seq + pos) * d
		copy(inject[row:], tok)
		mask[i*seq+pos] = 1
		var nb float64
		for _, v := range byp {
			nb += float64(v) * float64(v)
		}
		for j, v := range byp {
			bypass[row+j] = float32(c.BypassAlpha * float64(v) / math.Sqrt(nb))
		}
	}
	b := graph.NewBuilder()
	out := BuildText(b, tinyModel(t).Text, b.Input("ids", n, seq), b.Input("inject", n, seq, d), b.Input("mask", n, seq, 1), b.Input("bypass", n, seq, d))
	b.Output("keys", out.Keys)
	b.Output("values", out.Values)
	b.Output("pre", out.PreLN)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	weights, closeFn, err := fixtures.Weights(m.Root() + "/model/text_encoder/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	inputs := map[string][]float32{"ids": ids, "inject": inject, "mask": mask, "bypass": bypass}
	check := func(label string, res map[string][]float32) {
		for out, key := range map[string]string{"keys": "last_hidden_state", "values": "last_hidden_state_bypass"} {
			want, _, _ := fc.OutputTensor(key)
			if e := graph.RelErr(res[out], want); e > 1e-5 {
				t.Errorf("%s %s: relative error %.3g", label, key, e)
			}
		}
		want, _, _ := fc.OutputTensor("pre_final_ln_at_placeholder")
		got := make([]float32, 0, n*d)
		for i := 0; i < n; i++ {
			got = append(got, res["pre"][(i*seq+pos)*d:(i*seq+pos+1)*d]...)
		}
		if e := graph.RelErr(got, want); e > 1e-5 {
			t.Errorf("%s pre_final_ln_at_placeholder: relative error %.3g", label, e)
		}
	}
	res, err := graph.Interpret(g, inputs, weights)
	if err != nil {
		t.Fatal(err)
	}
	check("CPU", res)
	dev := device(t)
	if dev == nil {
		return
	}
	p, err := graph.Compile(dev, g, weights, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for k, v := range inputs {
		if err := p.SetInput(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	gpu := map[string][]float32{}
	for _, k := range []string{"keys", "values", "pre"} {
		if gpu[k], err = p.Output(k); err != nil {
			t.Fatal(err)
		}
	}
	check("GPU", gpu)
}
