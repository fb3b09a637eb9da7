package neti

import (
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/pipeline"
	"github.com/neti-project/neti/model/sd"
	"github.com/neti-project/neti/plugin"
)

func tinyModel(t testing.TB) *sd.Model {
	t.Helper()
	m, _ := fixtures.SDTiny()
	model, err := sd.Open(m.Root()+"/model", sd.Options{Weights: graph.WeightsF32}) // fp32 fixture references
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { model.Close() })
	return model
}

// The conditioner's contexts for one step are neti_unet's context_keys and
// context_values (t = 500, all 16 layers), and through the UNet with keys
// and values from different sources they give its noise prediction.
func TestConditionerNeTIUNetFixture(t *testing.T) {
	dev := device(t)
	if dev == nil {
		t.Skip("no Vulkan device")
	}
	model := tinyModel(t)
	c := tinyConcept(t)
	m, _ := fixtures.SDTiny()
	fc, err := m.Case("neti_unet")
	if err != nil {
		t.Fatal(err)
	}
	ids64, _, err := fc.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(ids64))
	for i, v := range ids64 {
		ids[i] = int(v)
	}
	var ts float64
	if err := fc.Input("timestep", &ts); err != nil {
		t.Fatal(err)
	}
	cond, err := NewConditioner(dev, model, ids, []ConceptUse{{Concept: c, TokenID: 1000, Truncation: -1, Strength: 1}}, []float64{ts})
	if err != nil {
		t.Fatal(err)
	}
	defer cond.Close()
	keys, values, err := cond.Step(0)
	if err != nil {
		t.Fatal(err)
	}
	wantK, _, _ := fc.OutputTensor("context_keys")
	wantV, _, _ := fc.OutputTensor("context_values")
	var gotK, gotV []float32
	for l := range keys {
		gotK = append(gotK, keys[l]...)
		gotV = append(gotV, values[l]...)
	}
	if e := graph.RelErr(gotK, wantK); e > 1e-5 {
		t.Errorf("keys: relative error %.3g", e)
	}
	if e := graph.RelErr(gotV, wantV); e > 1e-5 {
		t.Errorf("values: relative error %.3g", e)
	}
	u, err := model.CompileUNet(dev, sd.UNetOptions{Batch: 1, Height: 16, Width: 16, Context: sd.LayerKeysValues})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	sample, _, _ := fc.InputTensor("sample")
	for _, tc := range []struct {
		out    string
		values [][]float32
	}{{"noise_pred", values}, {"noise_pred_no_bypass", keys}} {
		if err := u.SetLayerContexts(keys, tc.values); err != nil {
			t.Fatal(err)
		}
		pred, err := u.Predict(sample, []float32{float32(ts)})
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := fc.OutputTensor(tc.out)
		if e := graph.RelErr(pred, want); e > 1e-4 {
			t.Errorf("%s: relative error %.3g", tc.out, e)
		}
	}
}

// Two concepts in one prompt: each mapper reaches only its own
// placeholder. Changing the second concept leaves every context row before
// its position unchanged (CLIP is causal) and changes rows from it on; the
// first concept's injected row matches its own mapper.
func TestConditionerTwoConcepts(t *testing.T) {
	dev := device(t)
	if dev == nil {
		t.Skip("no Vulkan device")
	}
	model := tinyModel(t)
	a := tinyConcept(t)
	b := tinyConcept(t)
	b.Token = "<b>"
	perturb := func(c *plugin.Concept, f float32) {
		for i := range c.Weights.OutB.Data {
			c.Weights.OutB.Data[i] += f * float32(i%7-3)
		}
	}
	perturb(b, 0.3)
	tok := model.Tokenizer
	idA, err := tok.AddToken("<a>")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := tok.AddToken("<b>")
	if err != nil {
		t.Fatal(err)
	}
	ids, _, _ := tok.EncodePadded("a photo of <a> next to <b> on a table")
	posA, posB := -1, -1
	for i, id := range ids {
		if id == idA {
			posA = i
		}
		if id == idB {
			posB = i
		}
	}
	if posA < 0 || posB <= posA {
		t.Fatalf("positions %d %d in %v", posA, posB, ids)
	}
	steps := []float64{999, 500}
	run := func(bc *plugin.Concept) (k, v [][]float32) {
		cond, err := NewConditioner(dev, model, ids, []ConceptUse{
			{Concept: a, TokenID: idA, Truncation: -1, Strength: 1},
			{Concept: bc, TokenID: idB, Truncation: -1, Strength: 1},
		}, steps)
		if err != nil {
			t.Fatal(err)
		}
		defer cond.Close()
		k, v, err = cond.Step(1)
		if err != nil {
			t.Fatal(err)
		}
		return k, v
	}
	k1, v1 := run(b)
	b2 := tinyConcept(t)
	perturb(b2, -0.5)
	k2, v2 := run(b2)
	d := model.Text.Hidden
	for l := range k1 {
		for p := 0; p < len(ids); p++ {
			r1, r2 := k1[l][p*d:(p+1)*d], k2[l][p*d:(p+1)*d]
			same := graph.MaxAbsDiff(r1, r2) == 0
			if p < posB && !same {
				t.Fatalf("layer %d: key row %d (before <b> at %d) changed with <b>'s mapper", l, p, posB)
			}
			if p == posB && same {
				t.Fatalf("layer %d: <b>'s row did not change with its mapper", l)
			}
		}
		if graph.MaxAbsDiff(v1[l][posA*d:(posA+1)*d], v2[l][posA*d:(posA+1)*d]) != 0 {
			t.Fatalf("layer %d: <a>'s value row changed with <b>'s mapper", l)
		}
	}
	// Without <b>'s concept the prompt is refused rather than silently
	// encoded with the placeholder's missing embedding.
	if _, err := NewConditioner(dev, model, ids, []ConceptUse{{Concept: a, TokenID: idA, Truncation: -1, Strength: 1}, {Concept: b, TokenID: 12345, Strength: 1}}, steps); err == nil {
		t.Fatal("a concept missing from the prompt was accepted")
	}
}

// neti_pipeline: the whole NeTI sampling run (DPM++ 2M with NeTI's linspace
// timesteps, CFG 7.5 with the plain negative prompt, per-layer keys and
// values from the conditioner every step), latents after every step and
// the decoded image.
func TestNeTIPipelineFixture(t *testing.T) {
	dev := device(t)
	if dev == nil {
		t.Skip("no Vulkan device")
	}
	model := tinyModel(t)
	model.Sched.TimestepSpacing = "linspace" // NeTI pins diffusers 0.14, whose DPM solver spaces timesteps this way
	c := tinyConcept(t)
	m, _ := fixtures.SDTiny()
	fc, err := m.Case("neti_pipeline")
	if err != nil {
		t.Fatal(err)
	}
	ids64, _, err := fc.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(ids64))
	for i, v := range ids64 {
		ids[i] = int(v)
	}
	init, _, _ := fc.InputTensor("initial_latents")
	var steps int
	var cfg float64
	if err := fc.Param("num_inference_steps", &steps); err != nil {
		t.Fatal(err)
	}
	if err := fc.Param("guidance_scale", &cfg); err != nil {
		t.Fatal(err)
	}
	var wantTS []float64
	if err := fc.Output("timesteps", &wantTS); err != nil {
		t.Fatal(err)
	}
	perStep, _, _ := fc.OutputTensor("latents_per_step")
	n := len(init)
	p := pipeline.New(model, dev)
	defer p.Close()
	var got [][]float32
	res, err := p.Generate(pipeline.Options{
		NegativePrompt: "", Steps: steps, CFGScale: cfg, Sampler: "dpm++2m", Width: 128, Height: 128, Latents: init,
		Concepts: func(ts []float64) (pipeline.Conditioning, error) {
			if len(ts) != len(wantTS) || ts[0] != wantTS[0] || ts[len(ts)-1] != wantTS[len(ts)-1] {
				t.Errorf("timesteps %v, want %v", ts, wantTS)
			}
			return NewConditioner(dev, model, ids, []ConceptUse{{Concept: c, TokenID: 1000, Truncation: -1, Strength: 1}}, ts)
		},
		OnStep: func(s pipeline.Step) error {
			got = append(got, append([]float32(nil), s.Latents...))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if e := graph.RelErr(g, perStep[i*n:(i+1)*n]); e > 1e-4 {
			t.Errorf("latents after step %d: relative error %.3g", i+1, e)
		}
	}
	want, _, _ := fc.OutputTensor("image")
	if e := graph.MaxAbsDiff(res.Pixels, want); e > 2.0/255 {
		t.Errorf("image: max difference %.4f (> 2/255)", e)
	}
}

// Encoding the positions before the first placeholder once and only the
// rest per step gives the contexts of encoding the whole prompt every
// step: a long prefix, two concepts (the prefix ends at the first), a
// placeholder right after BOS, and a prompt without concepts (no reuse).
func TestConditionerPrefixReuse(t *testing.T) {
	dev := device(t)
	if dev == nil {
		t.Skip("no Vulkan device")
	}
	model := tinyModel(t)
	tok := model.Tokenizer
	a := tinyConcept(t)
	a.Token = "<a>"
	b := tinyConcept(t)
	b.Token = "<b>"
	for i := range b.Weights.OutB.Data {
		b.Weights.OutB.Data[i] += 0.3 * float32(i%7-3)
	}
	idA, err := tok.AddToken("<a>")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := tok.AddToken("<b>")
	if err != nil {
		t.Fatal(err)
	}
	useA := ConceptUse{Concept: a, TokenID: idA, Truncation: -1, Strength: 1}
	useB := ConceptUse{Concept: b, TokenID: idB, Truncation: 16, Strength: 0.8}
	// long is as many words as leave about 20 positions after them.
	long := ""
	for {
		ids, n, _ := tok.EncodePadded(long + "a red circle ")
		if n > len(ids)-20 {
			break
		}
		long += "a red circle "
	}
	for _, tc := range []struct {
		name   string
		prompt string
		uses   []ConceptUse
	}{
		{"long_prefix", long + "<a>", []ConceptUse{useA}},
		{"two_concepts", "a photo of <a> next to <b> on a table", []ConceptUse{useA, useB}},
		{"two_concepts_late", long + "<b> and <a>", []ConceptUse{useA, useB}},
		{"placeholder_first", "<a> on a table", []ConceptUse{useA}},
		{"no_concept", "a photo of a table", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, _, _ := tok.EncodePadded(tc.prompt)
			first := -1
			for i, id := range ids {
				if (id == idA || id == idB) && first < 0 {
					first = i
				}
			}
			steps := []float64{999, 1}
			encode := func(full bool) (*Conditioner, [][][]float32) {
				c, err := NewConditionerWith(dev, model, ids, tc.uses, steps, ConditionerOptions{FullRecompute: full})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var kv [][][]float32 // [step*2 + keys|values][layer]
				for i := range steps {
					k, v, err := c.Step(i)
					if err != nil {
						t.Fatal(err)
					}
					kv = append(kv, k, v)
				}
				return c, kv
			}
			reuse, got := encode(false)
			full, want := encode(true)
			if full.prefix != 0 || reuse.prefix != max(first, 0) {
				t.Fatalf("prefix %d (full recompute %d), want %d", reuse.prefix, full.prefix, max(first, 0))
			}
			if tc.name == "long_prefix" && reuse.prefix < 40 {
				t.Fatalf("the long prefix is only %d tokens", reuse.prefix)
			}
			for i := range want {
				for l := range want[i] {
					if len(got[i][l]) != len(want[i][l]) {
						t.Fatalf("step %d layer %d: %d values, want %d", i/2, l, len(got[i][l]), len(want[i][l]))
					}
					if e := graph.RelErr(got[i][l], want[i][l]); e > 1e-4 {
						t.Errorf("step %d layer %d %s: relative error %.3g", i/2, l, []string{"keys", "values"}[i%2], e)
					}
				}
			}
		})
	}
}
