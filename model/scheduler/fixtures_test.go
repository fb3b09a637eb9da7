package scheduler

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

// relErr is ||a-b|| / ||b|| in float64.
func relErr(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func loadCase(t *testing.T, name string) *fixtures.Case {
	t.Helper()
	m, err := fixtures.SDTiny()
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Case(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// configFile parses a scheduler_config.json of the fixture set.
func configFile(t *testing.T, elem ...string) Config {
	t.Helper()
	p, err := fixtures.Path(elem...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return c
}

func sdTinyConfig(t *testing.T) Config {
	return configFile(t, "sd-tiny", "model", "scheduler", "scheduler_config.json")
}

// shapesConfigPath finds sd-shapes' scheduler_config.json, which lives in
// the fixtures or, once embedded, under model/builtin.
func shapesConfigPath(t testing.TB) string {
	t.Helper()
	p, err := fixtures.Path("sd-shapes", "model", "scheduler", "scheduler_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	dir, err := fixtures.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "..", "..", "model", "builtin", "sd-shapes", "scheduler", "scheduler_config.json")
}

func shapesConfig(t *testing.T) Config {
	t.Helper()
	b, err := os.ReadFile(shapesConfigPath(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTablesMatchTorch(t *testing.T) {
	c := loadCase(t, "scheduler_tables")
	cfg, err := ParseConfig(c.Inputs["scheduler_config"])
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTables(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []struct {
		name string
		got  []float32
	}{
		{"betas", tab.Betas},
		{"alphas_cumprod", tab.AlphasCumprod},
	} {
		want, _, err := c.OutputTensor(out.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != len(out.got) {
			t.Fatalf("%s: %d values, want %d", out.name, len(out.got), len(want))
		}
		// The tables feed every sampler, so they must be torch's bits.
		bad := 0
		for i := range want {
			if math.Float32bits(want[i]) != math.Float32bits(out.got[i]) {
				if bad < 3 {
					t.Errorf("%s[%d] = %v, want %v", out.name, i, out.got[i], want[i])
				}
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ", out.name, bad, len(want))
		}
	}
	for i, b := range tab.Betas {
		if tab.Alphas[i] != 1-b {
			t.Fatalf("alphas[%d] = %v, want 1-%v", i, tab.Alphas[i], b)
		}
	}
}

func TestAddNoiseAndVelocity(t *testing.T) {
	c := loadCase(t, "ddpm_add_noise")
	tab, err := NewTables(sdTinyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	x0, shape, err := c.InputTensor("x0")
	if err != nil {
		t.Fatal(err)
	}
	nz, _, err := c.InputTensor("noise")
	if err != nil {
		t.Fatal(err)
	}
	var ts []int
	if err := c.Input("timesteps", &ts); err != nil {
		t.Fatal(err)
	}
	if len(ts) != shape[0] {
		t.Fatalf("%d timesteps for batch %d", len(ts), shape[0])
	}
	per := len(x0) / shape[0]
	for _, out := range []struct {
		name string
		fn   func(Tables, []float32, []float32, int) ([]float32, error)
	}{
		{"noisy", AddNoise},
		{"velocity", Velocity},
	} {
		want, _, err := c.OutputTensor(out.name)
		if err != nil {
			t.Fatal(err)
		}
		for b, ts := range ts {
			lo, hi := b*per, (b+1)*per
			got, err := out.fn(tab, x0[lo:hi], nz[lo:hi], ts)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(got, want[lo:hi]); e > 1e-6 {
				t.Errorf("%s t=%d: relative error %.3g", out.name, ts, e)
			}
		}
	}
}

// TestSamplerLoops drives each sampler with the recorded model outputs and
// compares every step with the reference loop.
func TestSamplerLoops(t *testing.T) {
	tests := []struct {
		caseName, scheduler string
		dpmConfig           bool // the case carries its own config in params.config
	}{
		{"ddim_50", "ddim", false},
		{"ddim_10", "ddim", false},
		{"dpmpp2m_50", "dpm++2m", true},
		{"dpmpp2m_10", "dpmpp2m", true},
		{"pndm_50", "pndm", false},
	}
	for _, tt := range tests {
		t.Run(tt.caseName, func(t *testing.T) {
			c := loadCase(t, tt.caseName)
			cfg := sdTinyConfig(t)
			if tt.dpmConfig {
				var err error
				if cfg, err = ParseConfig(c.Params["config"]); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := c.Param("num_inference_steps", &n); err != nil {
				t.Fatal(err)
			}
			s, err := New(tt.scheduler, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetTimesteps(n); err != nil {
				t.Fatal(err)
			}
			var wantTs []int
			if err := c.Output("timesteps", &wantTs); err != nil {
				t.Fatal(err)
			}
			if got := s.Timesteps(); !slices.Equal(got, wantTs) {
				t.Fatalf("timesteps\n got %v\nwant %v", got, wantTs)
			}
			x, _, err := c.InputTensor("x_T")
			if err != nil {
				t.Fatal(err)
			}
			outs, oshape, err := c.InputTensor("model_output")
			if err != nil {
				t.Fatal(err)
			}
			samples, _, err := c.OutputTensor("samples")
			if err != nil {
				t.Fatal(err)
			}
			var x0s []float32
			if _, ok := c.Outputs["pred_original_sample"]; ok {
				if x0s, _, err = c.OutputTensor("pred_original_sample"); err != nil {
					t.Fatal(err)
				}
			}
			per := len(x)
			if oshape[0] != len(wantTs) || len(samples) != len(wantTs)*per {
				t.Fatalf("fixture shapes: model_output %v, %d samples", oshape, len(samples)/per)
			}
			// A rerun after Reset must reproduce the first run exactly.
			var first []float32
			worst := 0.0
			for run := 0; run < 2; run++ {
				x := append([]float32(nil), x...)
				for k := range wantTs {
					lo, hi := k*per, (k+1)*per
					if in := s.ScaleModelInput(x, k); relErr(in, x) != 0 {
						t.Fatalf("step %d: ScaleModelInput changed the input", k)
					}
					prev, x0, err := s.Step(outs[lo:hi], k, x, nil)
					if err != nil {
						t.Fatalf("step %d: %v", k, err)
					}
					e := relErr(prev, samples[lo:hi])
					worst = max(worst, e)
					if e > 1e-5 {
						t.Fatalf("run %d step %d (t=%d): sample relative error %.3g", run, k, wantTs[k], e)
					}
					if x0s != nil {
						if e := relErr(x0, x0s[lo:hi]); e > 1e-5 {
							t.Fatalf("step %d (t=%d): pred_original relative error %.3g", k, wantTs[k], e)
						}
					}
					x = prev
				}
				if run == 0 {
					first = x
				} else if relErr(x, first) != 0 {
					t.Fatal("second run after Reset differs from the first")
				}
				s.Reset()
			}
			t.Logf("worst per-step sample relative error %.3g", worst)
		})
	}
}

// TestNeTITimesteps checks the DPM-Solver timesteps NeTI's mapper is
// trained and queried at.
func TestNeTITimesteps(t *testing.T) {
	shapes := shapesConfig(t)
	// An SD v1.5-style file without timestep_spacing: DPM-Solver must fall
	// back to its own default (linspace), DDIM to leading.
	legacy, err := ParseConfig([]byte(`{"_class_name": "PNDMScheduler", "beta_end": 0.012,
		"beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
		"set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null,
		"clip_sample": false}`))
	if err != nil {
		t.Fatal(err)
	}
	ref := loadCase(t, "dpmpp2m_50")
	var want []int
	if err := ref.Output("timesteps", &want); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
	}{{"sd-shapes", shapes}, {"legacy-sd-v1", legacy}} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New("dpm++2m", tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetTimesteps(50); err != nil {
				t.Fatal(err)
			}
			got := s.Timesteps()
			if !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
			if got[0] != 999 || got[49] != 20 || !slices.Contains(got, 500) || slices.Contains(got, 499) {
				t.Fatalf("NeTI timesteps %v: want 999..20 with 500 and without 499", got)
			}
		})
	}
	d, err := New("ddim", legacy)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetTimesteps(50); err != nil {
		t.Fatal(err)
	}
	if ts := d.Timesteps(); ts[0] != 981 || ts[49] != 1 {
		t.Fatalf("DDIM on a legacy config: timesteps %d..%d, want leading 981..1", ts[0], ts[49])
	}

	// The NeTI pipeline reference runs 4 DPM steps; sd-tiny's config says
	// leading, so NeTI's (diffusers 0.14) linspace must be asked for.
	c := loadCase(t, "neti_pipeline")
	var want4 []int
	if err := c.Output("timesteps", &want4); err != nil {
		t.Fatal(err)
	}
	cfg := sdTinyConfig(t)
	cfg.TimestepSpacing = "linspace"
	s, err := New("dpm++2m", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(len(want4)); err != nil {
		t.Fatal(err)
	}
	if got := s.Timesteps(); !slices.Equal(got, want4) {
		t.Fatalf("neti_pipeline timesteps %v, want %v", got, want4)
	}
}

// TestPipelineDDIMTimesteps checks the 5-step DDIM list the CFG pipeline
// reference used.
func TestPipelineDDIMTimesteps(t *testing.T) {
	c := loadCase(t, "pipeline_ddim_cfg")
	var want []int
	if err := c.Output("timesteps", &want); err != nil {
		t.Fatal(err)
	}
	s, err := New("ddim", sdTinyConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(len(want)); err != nil {
		t.Fatal(err)
	}
	if got := s.Timesteps(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if s.InitNoiseSigma() != 1 {
		t.Fatalf("DDIM init noise sigma %v, want 1", s.InitNoiseSigma())
	}
}
