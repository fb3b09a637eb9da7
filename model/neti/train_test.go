package neti

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/neti-project/neti/graph"
	"github.com/neti-project/neti/internal/fixtures"
	"github.com/neti-project/neti/model/scheduler"
	"github.com/neti-project/neti/model/sd"
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
// (and on the CPU interpreter with NETI_SLOW_TESTS=1), built with and
// without activation checkpointing.
func TestTrainStepFixture(t *testing.T) {
	results := map[string]map[string][]float32{}
	for _, tc := range []struct {
		name          string
		checkpointing bool
	}{
		{"plain", false},
		{"checkpointing", true},
	} {
		t.Run(tc.name, func(t *testing.T) { results[tc.name] = trainStepFixture(t, tc.checkpointing) })
	}
	// Beyond both matching the fixture, recomputation gives the same
	// numbers as keeping the activations.
	plain, ck := results["plain"], results["checkpointing"]
	if plain == nil || ck == nil {
		return
	}
	for name, want := range plain {
		if e := graph.RelErr(ck[name], want); !(e <= 1e-4) {
			t.Errorf("%s: checkpointed vs plain relative error %.3g", name, e)
		}
	}
}

// trainStepFixture checks the step against the fixture and returns its
// outputs (from the device when there is one).
func trainStepFixture(t *testing.T, checkpointing bool) map[string][]float32 {
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
	b.SetCheckpointing(checkpointing)
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
	var cpu map[string][]float32
	if os.Getenv("NETI_SLOW_TESTS") == "1" || device(t) == nil {
		if cpu, err = graph.Interpret(g, in, weights); err != nil {
			t.Fatal(err)
		}
		check("CPU", cpu)
	}
	dev := device(t)
	if dev == nil {
		return cpu
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
	return res
}

// The planned peak of the sd-tiny training step is lower with
// checkpointing, and auto mode recomputes exactly when the plan without it
// exceeds the budget.
func TestPlanTrainingCheckpointing(t *testing.T) {
	model, c := tinyModel(t), tinyConcept(t)
	res := 16 * model.VAE.Factor()
	plan := func(mode Checkpointing, budget int64) TrainPlan {
		t.Helper()
		p, err := PlanTraining(model, c, res, TrainOptions{Batch: 2, Accum: 1, Checkpointing: mode, MemoryBudget: budget}, sd.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := plan(CheckpointAuto, 0)
	without, with := p.Without.PeakBytes(), p.With.PeakBytes()
	t.Logf("sd-tiny training step, batch 2 at %dx%d: planned peak %d bytes without checkpointing (activations %d), %d with (activations %d)",
		res, res, without, p.Without.ActivationBytes, with, p.With.ActivationBytes)
	if p.With.WeightBytes != p.Without.WeightBytes || p.With.IOBytes != p.Without.IOBytes {
		t.Errorf("checkpointing changed weights or I/O: %+v vs %+v", p.With, p.Without)
	}
	// Recomputing keeps about one block's activations instead of all of
	// them; a quarter less is a floor far below what it saves.
	if !(p.With.ActivationBytes < p.Without.ActivationBytes*3/4) {
		t.Errorf("activations planned: %d bytes with checkpointing, %d without: expected at least a quarter less", p.With.ActivationBytes, p.Without.ActivationBytes)
	}
	for _, tc := range []struct {
		name   string
		mode   Checkpointing
		budget int64
		want   bool
	}{
		{"auto_no_budget", CheckpointAuto, 0, false},
		{"auto_fits", CheckpointAuto, without, false},
		{"auto_small_budget", CheckpointAuto, without - 1, true},
		{"auto_tiny_budget", CheckpointAuto, 1 << 10, true},
		{"on_fits", CheckpointOn, 1 << 40, true},
		{"off_small_budget", CheckpointOff, 1 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := TrainOptions{Batch: 2, Accum: 1, Checkpointing: tc.mode, MemoryBudget: tc.budget}
			p := plan(tc.mode, tc.budget)
			if p.Checkpointing != tc.want || p.Budget != tc.budget {
				t.Errorf("PlanTraining: checkpointing %v with budget %d, want %v with %d", p.Checkpointing, p.Budget, tc.want, tc.budget)
			}
			if got := p.Chosen().PeakBytes(); got != map[bool]int64{false: without, true: with}[tc.want] {
				t.Errorf("chosen plan peak %d", got)
			}
			// The trainer's choice (the graph it compiles) agrees.
			g, _, cp, err := chooseStep(model, c, res, o, sd.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if cp.Checkpointing != tc.want {
				t.Errorf("chooseStep: checkpointing %v, want %v", cp.Checkpointing, tc.want)
			}
			st, err := graph.Plan(g, graph.Limits{}, graph.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if st != p.Chosen() {
				t.Errorf("the chosen graph plans %+v, PlanTraining said %+v", st, p.Chosen())
			}
		})
	}
}

func TestParseCheckpointing(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Checkpointing
		wantErr bool
	}{
		{"auto", CheckpointAuto, false},
		{"on", CheckpointOn, false},
		{"off", CheckpointOff, false},
		{"yes", 0, true},
		{"", 0, true},
	} {
		got, err := ParseCheckpointing(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseCheckpointing(%q) = %v, %v", tc.in, got, err)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}
