package scheduler

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sdConfig is SD v1's schedule with the given sampler options on top.
func sdConfig(edit func(*Config)) Config {
	c := DefaultConfig()
	c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, "scaled_linear"
	c.StepsOffset = 1
	if edit != nil {
		edit(&c)
	}
	return c
}

func normals(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

func rngFrom(seed uint64) func() float64 {
	r := rand.New(rand.NewPCG(seed, 2))
	return r.NormFloat64
}

// TestTrueNoiseStaysOnTrajectory: when the model predicts exactly the noise
// that x_T was built from, every deterministic sampler must recover x0 at
// each step and land on sqrt(acp[0])*x0 + sqrt(1-acp[0])*eps, since all of
// them are exact for a constant x0 (DPM-Solver's correction term vanishes
// and the PLMS weights sum to one).
func TestTrueNoiseStaysOnTrajectory(t *testing.T) {
	tests := []struct {
		name, sched string
		steps       int
		edit        func(*Config)
	}{
		{"ddim-leading", "ddim", 20, nil},
		// DDIM steps back by N//n whatever the spacing, so only lists with
		// that stride stay on the trajectory (trailing with n dividing N).
		{"ddim-trailing", "ddim", 8, func(c *Config) { c.TimestepSpacing = "trailing" }},
		{"ddim-v", "ddim", 10, func(c *Config) { c.PredictionType = "v_prediction" }},
		{"ddim-sample", "ddim", 10, func(c *Config) { c.PredictionType = "sample" }},
		{"dpm++2m", "dpm++2m", 20, nil},
		{"dpm++2m-v", "dpm++2m", 8, func(c *Config) { c.PredictionType = "v_prediction" }},
		{"dpm++2m-sample-heun", "dpm++2m", 8, func(c *Config) { c.PredictionType = "sample"; c.SolverType = "heun" }},
		{"dpm++2m-leading", "dpm++2m", 25, func(c *Config) { c.TimestepSpacing = "leading" }},
		{"dpm++2m-trailing", "dpm++2m", 12, func(c *Config) { c.TimestepSpacing = "trailing" }},
		{"dpm++1", "dpm++2m", 12, func(c *Config) { c.SolverOrder = 1 }},
		{"dpmsolver-midpoint", "dpm++2m", 10, func(c *Config) { c.AlgorithmType = "dpmsolver" }},
		{"dpmsolver-heun-v", "dpm++2m", 10, func(c *Config) {
			c.AlgorithmType, c.SolverType, c.PredictionType = "dpmsolver", "heun", "v_prediction"
		}},
		{"plms", "plms", 30, nil},
		{"pndm-prk", "pndm", 10, nil},
		{"pndm-prk-trailing", "pndm", 10, func(c *Config) { c.TimestepSpacing = "trailing" }},
	}
	const size = 256
	x0 := normals(1, size)
	eps := normals(2, size)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sdConfig(tt.edit)
			s, err := New(tt.sched, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetTimesteps(tt.steps); err != nil {
				t.Fatal(err)
			}
			tab, err := NewTables(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ts := s.Timesteps()
			x, err := AddNoise(tab, x0, eps, ts[0])
			if err != nil {
				t.Fatal(err)
			}
			for k, tk := range ts {
				var out []float32
				switch cfg.PredictionType {
				case "v_prediction":
					out, err = Velocity(tab, x0, eps, tk)
				case "sample":
					out = x0
				default:
					out = eps
				}
				if err != nil {
					t.Fatal(err)
				}
				prev, pred, err := s.Step(out, k, x, nil)
				if err != nil {
					t.Fatalf("step %d: %v", k, err)
				}
				if e := relErr(pred, x0); e > 1e-4 {
					t.Fatalf("step %d (t=%d): predicted x0 relative error %.3g", k, tk, e)
				}
				x = prev
			}
			want, err := AddNoise(tab, x0, eps, 0)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(x, want); e > 1e-4 {
				t.Fatalf("final sample relative error %.3g", e)
			}
		})
	}
}

// TestVPredictionMatchesEpsilon: for an arbitrary noise estimate at the
// current sample, the equivalent v (Velocity of the implied x0 and that
// noise) must drive a v_prediction scheduler along the same path.
func TestVPredictionMatchesEpsilon(t *testing.T) {
	tests := []struct {
		sched, spacing string
		steps          int
		multi          bool // compare a whole loop, not only the first step
	}{
		{"ddim", "", 10, true},
		{"ddim", "trailing", 10, true},
		{"dpm++2m", "", 10, true},
		{"dpm++2m", "", 20, true},
		{"ddpm", "", 10, true},
		{"euler_a", "leading", 10, true},
		{"pndm", "", 10, false},
		{"plms", "", 10, false},
	}
	const size = 128
	for _, tt := range tests {
		t.Run(tt.sched+"-"+tt.spacing, func(t *testing.T) {
			edit := func(v string) func(*Config) {
				return func(c *Config) { c.PredictionType, c.TimestepSpacing, c.ClipSample = v, tt.spacing, false }
			}
			cfgE, cfgV := sdConfig(edit("epsilon")), sdConfig(edit("v_prediction"))
			se, err := New(tt.sched, cfgE)
			if err != nil {
				t.Fatal(err)
			}
			sv, err := New(tt.sched, cfgV)
			if err != nil {
				t.Fatal(err)
			}
			tab, err := NewTables(cfgE)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []Scheduler{se, sv} {
				if err := s.SetTimesteps(tt.steps); err != nil {
					t.Fatal(err)
				}
			}
			ts := se.Timesteps()
			xe := normals(3, size)
			xv := append([]float32(nil), xe...)
			steps := len(ts)
			if !tt.multi {
				steps = 1
			}
			for k := 0; k < steps; k++ {
				eps := normals(uint64(100+k), size)
				// The v that says the same as eps about the VP sample x.
				xin := se.ScaleModelInput(xe, k)
				a := tab.AlphasCumprod[ts[k]]
				x0 := make([]float32, size)
				for i := range x0 {
					x0[i] = float32((float64(xin[i]) - math.Sqrt(1-float64(a))*float64(eps[i])) / math.Sqrt(float64(a)))
				}
				v, err := Velocity(tab, x0, eps, ts[k])
				if err != nil {
					t.Fatal(err)
				}
				pe, x0e, err := se.Step(eps, k, xe, rngFrom(uint64(k)))
				if err != nil {
					t.Fatal(err)
				}
				pv, x0v, err := sv.Step(v, k, xv, rngFrom(uint64(k)))
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(pv, pe); e > 1e-4 {
					t.Fatalf("step %d (t=%d): v and eps samples differ by %.3g", k, ts[k], e)
				}
				if e := relErr(x0v, x0e); e > 1e-4 {
					t.Fatalf("step %d (t=%d): v and eps x0 differ by %.3g", k, ts[k], e)
				}
				xe, xv = pe, pv
			}
		})
	}
}

func TestEulerAncestral(t *testing.T) {
	cfg := sdConfig(nil)
	s, err := New("euler_a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(30); err != nil {
		t.Fatal(err)
	}
	tab, err := NewTables(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Default spacing for Euler is linspace: fractional timesteps from 999
	// down to 0.
	vals := s.TimestepValues()
	if vals[0] != 999 || vals[len(vals)-1] != 0 || vals[1] == math.Round(vals[1]) {
		t.Fatalf("linspace timesteps %v", vals)
	}
	sigmaMax := math.Sqrt((1 - float64(tab.AlphasCumprod[999])) / float64(tab.AlphasCumprod[999]))
	if got, want := s.InitNoiseSigma(), math.Sqrt(sigmaMax*sigmaMax+1); math.Abs(got-want) > 1e-5*want {
		t.Fatalf("init noise sigma %v, want %v", got, want)
	}

	const size = 1 << 15
	x0 := normals(5, size)
	eps := normals(6, size)
	sig := s.(*eulerA).sigmas
	// trueNoise makes the model output the exact noise in x, which after
	// an ancestral step mixes eps with the injected noise.
	run := func(seed uint64, trueNoise bool) []float32 {
		s.Reset()
		x := make([]float32, size)
		for i := range x {
			x[i] = x0[i] + sig[0]*eps[i]
		}
		rng := rngFrom(seed)
		for k := range vals {
			out := eps
			if trueNoise {
				out = make([]float32, size)
				for i := range out {
					out[i] = (x[i] - x0[i]) / sig[k]
				}
			}
			prev, pred, err := s.Step(out, k, x, rng)
			if err != nil {
				t.Fatal(err)
			}
			if trueNoise {
				if e := relErr(pred, x0); e > 1e-5 {
					t.Fatalf("step %d: predicted x0 relative error %.3g", k, e)
				}
			}
			if k == 0 {
				// Ancestral step: x' = x0 + sigma_down*eps + sigma_up*z, so
				// x' - x0 has variance sigma_to^2 and covariance sigma_down
				// with eps.
				from, to := float64(sig[0]), float64(sig[1])
				up := math.Sqrt(to * to * (from*from - to*to) / (from * from))
				down := math.Sqrt(to*to - up*up)
				var vv, ve float64
				for i := range prev {
					r := float64(prev[i] - x0[i])
					vv += r * r
					ve += r * float64(eps[i])
				}
				vv /= size
				ve /= size
				if math.Abs(vv/(to*to)-1) > 0.03 {
					t.Fatalf("variance of x'-x0 is %.4g, want sigma_to^2 = %.4g", vv, to*to)
				}
				if math.Abs(ve-down) > 0.03*to {
					t.Fatalf("covariance with eps %.4g, want sigma_down = %.4g", ve, down)
				}
			}
			x = prev
		}
		return x
	}
	a, b, c := run(7, false), run(7, false), run(8, false)
	if relErr(a, b) != 0 {
		t.Fatal("same seed gave different samples")
	}
	if relErr(a, c) < 1e-3 {
		t.Fatal("different seeds gave the same samples")
	}
	// The last step goes to sigma = 0, so the final sample is the last x0
	// prediction, which the true noise makes exact.
	if e := relErr(run(9, true), x0); e > 1e-4 {
		t.Fatalf("final sample relative error to x0 %.3g", e)
	}

	in := normals(9, 16)
	scaled := s.ScaleModelInput(in, 0)
	for i := range in {
		want := float64(in[i]) / s.InitNoiseSigma()
		if math.Abs(float64(scaled[i])-want) > 1e-6*math.Abs(want)+1e-7 {
			t.Fatalf("ScaleModelInput[%d] = %v, want %v", i, scaled[i], want)
		}
	}
	if _, _, err := s.Step(eps, 0, x0, nil); err == nil {
		t.Fatal("ancestral step with a nil rng gave no error")
	}
}

// TestDDPMPosterior checks the ancestral DDPM step statistically: from x_t
// built with eps and the true eps as model output, x_prev - sqrt(acp')x0
// must have variance 1-acp' (the marginal of q(x_prev | x0)).
func TestDDPMPosterior(t *testing.T) {
	cfg := sdConfig(func(c *Config) { c.ClipSample = false })
	s, err := New("ddpm", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(20); err != nil {
		t.Fatal(err)
	}
	tab, err := NewTables(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 16
	x0 := normals(10, size)
	eps := normals(11, size)
	ts := s.Timesteps()
	for _, k := range []int{0, 10, 18} {
		x, err := AddNoise(tab, x0, eps, ts[k])
		if err != nil {
			t.Fatal(err)
		}
		prev, pred, err := s.Step(eps, k, x, rngFrom(uint64(k)))
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(pred, x0); e > 1e-4 {
			t.Fatalf("t=%d: x0 relative error %.3g", ts[k], e)
		}
		aPrev := float64(tab.AlphasCumprod[ts[k+1]])
		var v float64
		for i := range prev {
			r := float64(prev[i]) - math.Sqrt(aPrev)*float64(x0[i])
			v += r * r
		}
		v /= size
		if math.Abs(v/(1-aPrev)-1) > 0.03 {
			t.Fatalf("t=%d: variance %.4g, want %.4g", ts[k], v, 1-aPrev)
		}
	}
}

func TestTrailingAndLinspaceTimesteps(t *testing.T) {
	tests := []struct {
		sched, spacing string
		n              int
		want           []int
	}{
		{"ddim", "trailing", 4, []int{999, 749, 499, 249}},
		{"ddim", "linspace", 4, []int{999, 666, 333, 0}},
		{"ddim", "leading", 4, []int{751, 501, 251, 1}},
		{"dpm++2m", "leading", 4, []int{801, 601, 401, 201}},
		{"dpm++2m", "trailing", 4, []int{999, 749, 499, 249}},
		{"pndm", "leading", 4, []int{751, 626, 626, 501, 501, 376, 376, 251, 251, 126, 126, 1, 1}},
		{"plms", "leading", 4, []int{751, 501, 501, 251, 1}},
		{"euler_a", "leading", 4, []int{751, 501, 251, 1}},
		{"ddpm", "trailing", 3, []int{999, 666, 332}},
	}
	for _, tt := range tests {
		t.Run(tt.sched+"-"+tt.spacing, func(t *testing.T) {
			s, err := New(tt.sched, sdConfig(func(c *Config) { c.TimestepSpacing = tt.spacing }))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetTimesteps(tt.n); err != nil {
				t.Fatal(err)
			}
			if got := s.Timesteps(); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDPMDeduplicatesTimesteps(t *testing.T) {
	s, err := New("dpm++2m", sdConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(1000); err != nil {
		t.Fatal(err)
	}
	ts := s.Timesteps()
	for i := 1; i < len(ts); i++ {
		if ts[i] >= ts[i-1] {
			t.Fatalf("timesteps not strictly descending at %d: %v", i, ts[i-1:i+1])
		}
	}
	if len(ts) >= 1000 || ts[0] != 999 {
		t.Fatalf("%d timesteps starting at %d", len(ts), ts[0])
	}
}

func TestErrors(t *testing.T) {
	good := sdConfig(nil)
	if _, err := New("k_lms", good); err == nil || !strings.Contains(err.Error(), "ddim") {
		t.Fatalf("unknown name: %v", err)
	}
	badConfigs := []struct {
		name  string
		sched string
		edit  func(*Config)
	}{
		{"zero train steps", "ddim", func(c *Config) { c.NumTrainTimesteps = 0 }},
		{"huge train steps", "ddim", func(c *Config) { c.NumTrainTimesteps = 1 << 30 }},
		{"bad schedule", "ddim", func(c *Config) { c.BetaSchedule = "quadratic" }},
		{"bad prediction", "ddim", func(c *Config) { c.PredictionType = "noise" }},
		{"bad spacing", "ddim", func(c *Config) { c.TimestepSpacing = "karras" }},
		{"beta above one", "ddim", func(c *Config) { c.BetaEnd = 2 }},
		{"short trained betas", "ddim", func(c *Config) { c.TrainedBetas = []float64{0.1} }},
		{"solver order 3", "dpm++2m", func(c *Config) { c.SolverOrder = 3 }},
		{"sde algorithm", "dpm++2m", func(c *Config) { c.AlgorithmType = "sde-dpmsolver++" }},
		{"pndm sample", "pndm", func(c *Config) { c.PredictionType = "sample" }},
		{"clip range", "ddim", func(c *Config) { c.ClipSample, c.ClipSampleRange = true, 0 }},
	}
	for _, tt := range badConfigs {
		if _, err := New(tt.sched, sdConfig(tt.edit)); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}

	for _, name := range []string{"ddim", "dpm++2m", "pndm", "plms", "euler_a", "ddpm"} {
		s, err := New(name, good)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 8)
		if _, _, err := s.Step(x, 0, x, rngFrom(1)); err == nil {
			t.Errorf("%s: Step before SetTimesteps gave no error", name)
		}
		for _, n := range []int{0, -1, 1001} {
			if err := s.SetTimesteps(n); err == nil {
				t.Errorf("%s: SetTimesteps(%d) gave no error", name, n)
			}
		}
		if err := s.SetTimesteps(5); err != nil {
			t.Fatal(err)
		}
		n := len(s.Timesteps())
		if _, _, err := s.Step(x, n, x, rngFrom(1)); err == nil {
			t.Errorf("%s: step index %d of %d gave no error", name, n, n)
		}
		if _, _, err := s.Step(x, -1, x, rngFrom(1)); err == nil {
			t.Errorf("%s: step index -1 gave no error", name)
		}
		if _, _, err := s.Step(x[:4], 0, x, rngFrom(1)); err == nil {
			t.Errorf("%s: mismatched lengths gave no error", name)
		}
		if _, _, err := s.Step(nil, 0, nil, rngFrom(1)); err == nil {
			t.Errorf("%s: empty sample gave no error", name)
		}
	}

	// Leading spacing with steps_offset 1 and as many steps as training
	// steps would reach timestep 1000.
	s, err := New("ddim", good)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(1000); err == nil {
		t.Error("timestep past the table gave no error")
	}

	// Multistep samplers refuse skipped steps and accept any first step
	// (img2img starts in the middle).
	for _, name := range []string{"dpm++2m", "plms"} {
		s, err := New(name, good)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(10); err != nil {
			t.Fatal(err)
		}
		x := normals(1, 8)
		if _, _, err := s.Step(x, 3, x, nil); err != nil {
			t.Fatalf("%s: first step at index 3: %v", name, err)
		}
		if _, _, err := s.Step(x, 5, x, nil); err == nil {
			t.Errorf("%s: skipping from step 3 to 5 gave no error", name)
		}
		if _, _, err := s.Step(x[:4], 4, x[:4], nil); err == nil {
			t.Errorf("%s: changing the sample size mid-run gave no error", name)
		}
		s.Reset()
		if _, _, err := s.Step(x, 0, x, nil); err != nil {
			t.Errorf("%s: step 0 after Reset: %v", name, err)
		}
	}

	tab, err := NewTables(good)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 4)
	for _, ts := range []int{-1, 1000} {
		if _, err := AddNoise(tab, x, x, ts); err == nil {
			t.Errorf("AddNoise at t=%d gave no error", ts)
		}
		if _, err := Velocity(tab, x, x, ts); err == nil {
			t.Errorf("Velocity at t=%d gave no error", ts)
		}
	}
	if _, err := AddNoise(tab, x, x[:3], 10); err == nil {
		t.Error("AddNoise with mismatched lengths gave no error")
	}
	if _, err := Velocity(tab, x, x[:3], 10); err == nil {
		t.Error("Velocity with mismatched lengths gave no error")
	}
}

// TestTrailingSpuriousStep: for n = 61 numpy's arange(1000, 0, -1000/61)
// has 62 values, the last rounding to timestep -1; the list must keep n.
func TestTrailingSpuriousStep(t *testing.T) {
	for _, name := range []string{"ddim", "dpm++2m", "euler_a"} {
		s, err := New(name, sdConfig(func(c *Config) { c.TimestepSpacing = "trailing" }))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(61); err != nil {
			t.Fatal(err)
		}
		ts := s.Timesteps()
		if len(ts) != 61 || ts[0] != 999 || ts[60] != 15 {
			t.Fatalf("%s: %d timesteps %d..%d, want 61 from 999 to 15", name, len(ts), ts[0], ts[len(ts)-1])
		}
	}
}
