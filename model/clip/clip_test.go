package clip

import (
	"fmt"
	"strings"
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

// BuildAfter on the positions after a prefix, attending to the prefix's
// cached keys and values (one prefix shared by a batch, or one per row),
// gives the same rows as Build on the whole sequence: CLIP is causal.
func TestBuildAfterMatchesBuild(t *testing.T) {
	c := tinyConfig(t)
	const seq = 77
	for _, tc := range []struct {
		name               string
		batch, prefixBatch int
		p                  int
		inject             bool
	}{
		{"one_token_prefix", 1, 1, 1, false},
		{"long_prefix_shared", 3, 1, 60, true},
		{"last_position", 2, 1, 76, false},
		{"prefix_per_row", 2, 2, 9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every row has the same first p tokens (the shared prefix)
			// and its own tokens after them.
			ids := make([]float32, tc.batch*seq)
			for r := 0; r < tc.batch; r++ {
				for i := 0; i < seq; i++ {
					id := (i*37 + 11) % c.Vocab
					if i >= tc.p {
						id = (i*13 + r*101 + 5) % c.Vocab
					}
					ids[r*seq+i] = float32(id)
				}
			}
			s := seq - tc.p
			inject := make([]float32, tc.batch*seq*c.Hidden)
			mask := make([]float32, tc.batch*seq)
			if tc.inject {
				for r := 0; r < tc.batch; r++ {
					at := r*seq + tc.p + s/2
					mask[at] = 1
					for j := 0; j < c.Hidden; j++ {
						inject[at*c.Hidden+j] = float32((j%5)-2) * 0.1 * float32(r+1)
					}
				}
			}
			rows := func(x []float32, from, to, width int) []float32 { // rows [from, to) of each batch row
				var out []float32
				for r := 0; r < len(x)/(seq*width); r++ {
					out = append(out, x[(r*seq+from)*width:(r*seq+to)*width]...)
				}
				return out
			}
			b := graph.NewBuilder()
			full := Build(b, c, b.Input("ids", tc.batch, seq), b.Input("inject", tc.batch, seq, c.Hidden), b.Input("mask", tc.batch, seq, 1))
			pre := Build(b, c, b.Input("pre_ids", tc.prefixBatch, tc.p), nil, nil)
			suf := BuildAfter(b, c, b.Input("suf_ids", tc.batch, s), b.Input("suf_inject", tc.batch, s, c.Hidden), b.Input("suf_mask", tc.batch, s, 1), &pre.Cache)
			b.Output("full", full.Hidden)
			b.Output("pre", pre.Hidden)
			b.Output("suf", suf.Hidden)
			b.Output("suf_pre", suf.PreLN)
			b.Output("full_pre", full.PreLN)
			g, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			res, err := graph.Interpret(g, map[string][]float32{
				"ids": ids, "inject": inject, "mask": mask,
				"pre_ids":    rows(ids, 0, tc.p, 1)[:tc.prefixBatch*tc.p],
				"suf_ids":    rows(ids, tc.p, seq, 1),
				"suf_inject": rows(inject, tc.p, seq, c.Hidden),
				"suf_mask":   rows(mask, tc.p, seq, 1),
			}, tinyWeights(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, cmp := range []struct {
				what      string
				got, want []float32
			}{
				{"prefix rows", res["pre"], rows(res["full"], 0, tc.p, c.Hidden)[:tc.prefixBatch*tc.p*c.Hidden]},
				{"suffix rows", res["suf"], rows(res["full"], tc.p, seq, c.Hidden)},
				{"suffix rows before the final norm", res["suf_pre"], rows(res["full_pre"], tc.p, seq, c.Hidden)},
			} {
				if e := graph.RelErr(cmp.got, cmp.want); e > 1e-6 {
					t.Errorf("%s: relative error %.3g", cmp.what, e)
				}
			}
		})
	}
}

func TestBuildAfterErrors(t *testing.T) {
	c := tinyConfig(t)
	b := graph.NewBuilder()
	pre := Build(b, c, b.Input("pre", 1, 40), nil, nil)
	BuildAfter(b, c, b.Input("ids", 1, 38), nil, nil, &pre.Cache)
	if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), "78 tokens") {
		t.Errorf("78 positions: error %v", err)
	}
	b = graph.NewBuilder()
	pre = Build(b, c, b.Input("pre", 1, 40), nil, nil)
	short := Prefix{Keys: pre.Cache.Keys[:1], Values: pre.Cache.Values[:1]}
	BuildAfter(b, c, b.Input("ids", 1, 3), nil, nil, &short)
	if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), "3 layers") {
		t.Errorf("a prefix of one layer for three: error %v", err)
	}
}
