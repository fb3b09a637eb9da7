package neti

import (
	"fmt"
	"testing"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
)

// The mapper graph, on the CPU interpreter and on the device, matches
// NeTI's mapper on the fixture grid, with and without truncation.
func TestMapperFixture(t *testing.T) {
	c := tinyConcept(t)
	m, _ := fixtures.SDTiny()
	fc, err := m.Case("neti_mapper")
	if err != nil {
		t.Fatal(err)
	}
	var ts, ls []float32
	var truncs []int
	if err := fc.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	if err := fc.Input("unet_layers", &ls); err != nil {
		t.Fatal(err)
	}
	if err := fc.Input("truncation_idxs", &truncs); err != nil {
		t.Fatal(err)
	}
	n, hidden := len(ts), c.Arch.Hidden
	b := graph.NewBuilder()
	b.Output("out", BuildMapper(b, c, "mapper", b.Input("t", n), b.Input("l", n), b.Input("keep", n, hidden)))
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name  string
		trunc int
	}
	wants := []want{{"output", -1}}
	for _, k := range truncs {
		wants = append(wants, want{fmt.Sprintf("output_trunc_%d", k), k})
	}
	dev := device(t)
	var p *graph.Program
	if dev != nil {
		p, err = graph.Compile(dev, g, MapperWeights(c, "mapper"), graph.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
	}
	for _, w := range wants {
		ref, _, err := fc.OutputTensor(w.name)
		if err != nil {
			t.Fatal(err)
		}
		in := map[string][]float32{"t": ts, "l": ls, "keep": Keep(n, hidden, w.trunc)}
		res, err := graph.Interpret(g, in, MapperWeights(c, "mapper"))
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(res["out"], ref); e > 1e-5 {
			t.Errorf("%s (CPU): relative error %.3g", w.name, e)
		}
		if p == nil {
			continue
		}
		for k, v := range in {
			if err := p.SetInput(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		got, err := p.Output("out")
		if err != nil {
			t.Fatal(err)
		}
		if e := graph.RelErr(got, ref); e > 1e-5 {
			t.Errorf("%s (GPU): relative error %.3g", w.name, e)
		}
	}
}
