package neti

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/plugin"
)

// stepInputs fills the inputs of a training step for the fixture's batch.
func stepInputs(t *testing.T, c *plugin.Concept, s StepShape, ids64 []int64, placeholder int, latents, noise []float32, ts []int) map[string][]float32 {
	t.Helper()
	m, _ := fixtures.SDTiny()
	raw, err := os.ReadFile(m.Root() + "/model/scheduler/scheduler_config.json")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scheduler.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := scheduler.NewTables(sc)
	if err != nil {
		t.Fatal(err)
	}
	B, L := s.Batch, s.Layers
	in := map[string][]float32{"latents": latents, "noise": noise, "opt": {0, 0, 1, 1, 0}}
	var sa, sb, tt, mt, ml, ids, mask []float32
	for _, x := range ts {
		acp := float64(tables.AlphasCumprod[x])
		sa = append(sa, float32(math.Sqrt(acp)))
		sb = append(sb, float32(math.Sqrt(1-acp)))
		tt = append(tt, float32(x))
	}
	for l := 0; l < L; l++ {
		for bi := 0; bi < B; bi++ {
			mt = append(mt, float32(ts[bi]))
			ml = append(ml, float32(l))
			for _, id := range ids64[bi*s.Seq : (bi+1)*s.Seq] {
				if int(id) == placeholder {
					ids, mask = append(ids, 0), append(mask, 1)
				} else {
					ids, mask = append(ids, float32(id)), append(mask, 0)
				}
			}
		}
	}
	in["sqrt_acp"], in["sqrt_1m_acp"], in["timesteps"] = sa, sb, tt
	in["map_t"], in["map_l"], in["ids"], in["mask"] = mt, ml, ids, mask
	in["keep"] = Keep(L*B, s.MapperHidden, -1)
	for _, nt := range c.Weights.Named() {
		in["param."+nt.Name] = append([]float32(nil), nt.Tensor.Data...)
		for _, p := range []string{"m.", "v.", "acc."} {
			in[p+nt.Name] = make([]float32, nt.Tensor.Numel())
		}
	}
	return in
}

// TestTrainStepFixture: one NeTI training step (neti_train_grad): the loss,
// the prediction and the gradient of every mapper parameter, on the device
// (and on the CPU interpreter with NETI_SLOW_TESTS=1).
func TestTrainStepFixture(t *testing.T) {
	c := tinyConcept(t)
	m, _ := fixtures.SDTiny()
	fc, err := m.Case("neti_train_grad")
	if err != nil {
		t.Fatal(err)
	}
	ids64, _, err := fc.InputInts("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	latents, _, _ := fc.InputTensor("latents")
	noise, _, _ := fc.InputTensor("noise")
	var ts []int
	if err := fc.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	s := StepShape{Batch: 2, Seq: 77, LatentC: 4, LatentH: 16, LatentW: 16, Layers: 16, TextHidden: 32, MapperHidden: 128}
	model := tinyModel(t)
	b := graph.NewBuilder()
	st, err := BuildStep(b, c, model.Text, model.UNet, s, DefaultOptimizer(1))
	if err != nil {
		t.Fatal(err)
	}
	b.Output("loss", st.Loss)
	b.Output("pred", st.Pred)
	for name, g := range st.Grads {
		b.Output("grad/"+name, g)
	}
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	weights := frozenWeights(model)
	check := func(label string, res map[string][]float32) {
		for _, name := range []string{"loss", "noise_pred"} {
			want, _, _ := fc.OutputTensor(name)
			key := map[string]string{"loss": "loss", "noise_pred": "pred"}[name]
			if e := graph.RelErr(res[key], want); e > 1e-4 {
				t.Errorf("%s %s: relative error %.3g", label, name, e)
			}
		}
		for name := range st.Grads {
			want, _, err := fc.OutputTensor("grad/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if e := graph.RelErr(res["grad/"+name], want); e > 1e-3 {
				t.Errorf("%s grad %s: relative error %.3g", label, name, e)
			}
		}
	}
	in := stepInputs(t, c, s, ids64, 1000, latents, noise, ts)
	if os.Getenv("NETI_SLOW_TESTS") == "1" || device(t) == nil {
		res, err := graph.Interpret(g, in, weights)
		if err != nil {
			t.Fatal(err)
		}
		check("CPU", res)
	}
	dev := device(t)
	if dev == nil {
		return
	}
	t0 := time.Now()
	p, err := graph.Compile(dev, g, weights, graph.Options{Profile: os.Getenv("NETI_TIME_RUNS") == "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Logf("compile %v", time.Since(t0))
	for k, v := range in {
		if err := p.SetInput(k, v); err != nil {
			t.Fatal(err)
		}
	}
	t0 = time.Now()
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	t.Logf("first run %v", time.Since(t0))
	if os.Getenv("NETI_TIME_RUNS") == "1" {
		t0 = time.Now()
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		t.Logf("second run %v", time.Since(t0))
		prof, err := p.Profile()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range prof {
			t.Logf("%-22s %5d %v", o.Op, o.Count, o.Time)
		}
	}
	res := map[string][]float32{}
	for _, name := range g.OutList {
		if res[name], err = p.Output(name); err != nil {
			t.Fatal(err)
		}
	}
	check("GPU", res)
	t.Logf("planned peak %d bytes, %d dispatches", p.Stats().PeakBytes(), p.Stats().Dispatches)
}
