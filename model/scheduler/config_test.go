package scheduler

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/neti-project/neti/internal/fixtures"
)

func TestParseConfigFiles(t *testing.T) {
	tiny := sdTinyConfig(t)
	shapes := shapesConfig(t)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"tiny schedule", tiny.BetaSchedule, "scaled_linear"},
		{"tiny beta_start", tiny.BetaStart, 0.00085},
		{"tiny beta_end", tiny.BetaEnd, 0.012},
		{"tiny steps", tiny.NumTrainTimesteps, 1000},
		{"tiny offset", tiny.StepsOffset, 1},
		{"tiny skip prk", tiny.SkipPRKSteps, true},
		{"tiny alpha one", tiny.SetAlphaToOne, false},
		{"tiny spacing", tiny.TimestepSpacing, "leading"},
		{"tiny prediction", tiny.PredictionType, "epsilon"},
		{"shapes spacing", shapes.TimestepSpacing, "linspace"},
		{"shapes algorithm", shapes.AlgorithmType, "dpmsolver++"},
		{"shapes order", shapes.SolverOrder, 2},
		{"shapes solver", shapes.SolverType, "midpoint"},
		{"shapes lower final", shapes.LowerOrderFinal, true},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string // substring; empty for success
		check   func(Config) bool
	}{
		{"empty object gives defaults", `{}`, "", func(c Config) bool {
			d := DefaultConfig()
			return c.NumTrainTimesteps == d.NumTrainTimesteps && c.BetaSchedule == "linear" &&
				c.TimestepSpacing == "" && c.SolverOrder == 2 && c.LowerOrderFinal && !c.SetAlphaToOne
		}},
		{"DDIM class defaults", `{"_class_name": "DDIMScheduler"}`, "", func(c Config) bool {
			return c.SetAlphaToOne && c.ClipSample && c.ClipSampleRange == 1
		}},
		{"explicit false beats class default", `{"_class_name": "DDIMScheduler", "set_alpha_to_one": false}`, "",
			func(c Config) bool { return !c.SetAlphaToOne }},
		{"python -Infinity", `{"lambda_min_clipped": -Infinity, "beta_start": 0.001}`, "",
			func(c Config) bool { return c.BetaStart == 0.001 }},
		{"tokens inside strings are kept", `{"_class_name": "NaN \"Infinity\"", "beta_schedule": "-Infinity"}`, "",
			func(c Config) bool { return c.BetaSchedule == "-Infinity" }},
		{"nulls keep defaults", `{"trained_betas": null, "variance_type": null, "prediction_type": null}`, "",
			func(c Config) bool { return c.TrainedBetas == nil && c.PredictionType == "epsilon" }},
		{"trained betas", `{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2, 0.3]}`, "",
			func(c Config) bool { return len(c.TrainedBetas) == 3 && c.TrainedBetas[2] == 0.3 }},
		{"finite lambda clip", `{"lambda_min_clipped": -5.1}`, "lambda_min_clipped", nil},
		{"NaN lambda clip", `{"lambda_min_clipped": NaN}`, "lambda_min_clipped", nil},
		{"thresholding", `{"thresholding": true}`, "thresholding", nil},
		{"karras", `{"use_karras_sigmas": true}`, "use_karras_sigmas", nil},
		{"zero snr", `{"rescale_betas_zero_snr": true}`, "rescale_betas_zero_snr", nil},
		{"learned variance", `{"variance_type": "learned_range"}`, "variance_type", nil},
		{"wrong type", `{"num_train_timesteps": "many"}`, "num_train_timesteps", nil},
		{"bad float string", `{"beta_start": "tiny"}`, "beta_start", nil},
		{"not json", `{"beta_start": `, "parse config", nil},
		{"not an object", `[1, 2]`, "parse config", nil},
		{"trained betas length", `{"num_train_timesteps": 4, "trained_betas": [0.1]}`, "trained_betas", nil},
		{"negative steps", `{"num_train_timesteps": -1}`, "num_train_timesteps", nil},
		{"bad spacing", `{"timestep_spacing": "karras"}`, "timestep_spacing", nil},
		{"offset past table", `{"num_train_timesteps": 10, "steps_offset": 10}`, "steps_offset", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.json))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestTablesFromSchedules(t *testing.T) {
	trained, err := ParseConfig([]byte(`{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2, 0.3]}`))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTables(trained)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0.9, 0.72, 0.504} {
		if tab.Betas[i] != float32(trained.TrainedBetas[i]) {
			t.Fatalf("trained beta[%d] = %v", i, tab.Betas[i])
		}
		if got := float64(tab.AlphasCumprod[i]); math.Abs(got-want) > 2e-7*want {
			t.Fatalf("trained acp[%d] = %v, want %v", i, got, want)
		}
	}

	for _, schedule := range []string{"linear", "scaled_linear", "squaredcos_cap_v2"} {
		c := DefaultConfig()
		c.BetaSchedule = schedule
		tab, err := NewTables(c)
		if err != nil {
			t.Fatalf("%s: %v", schedule, err)
		}
		if tab.Betas[0] >= tab.Betas[999] {
			t.Errorf("%s: betas do not increase (%v .. %v)", schedule, tab.Betas[0], tab.Betas[999])
		}
		for i := 1; i < len(tab.AlphasCumprod); i++ {
			if !(tab.AlphasCumprod[i] < tab.AlphasCumprod[i-1]) || tab.AlphasCumprod[i] <= 0 {
				t.Fatalf("%s: acp[%d] = %v after %v", schedule, i, tab.AlphasCumprod[i], tab.AlphasCumprod[i-1])
			}
		}
	}
	// The linear schedule's ends are the configured betas.
	lin, err := NewTables(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if lin.Betas[0] != float32(0.0001) || lin.Betas[999] != float32(0.02) {
		t.Fatalf("linear betas %v .. %v", lin.Betas[0], lin.Betas[999])
	}
	bad := DefaultConfig()
	bad.BetaStart = math.NaN()
	if _, err := NewTables(bad); err == nil {
		t.Fatal("NaN beta_start gave no error")
	}
}

func FuzzParseConfig(f *testing.F) {
	tiny, err := fixtures.Path("sd-tiny", "model", "scheduler", "scheduler_config.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range []string{tiny, shapesConfigPath(f)} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"num_train_timesteps": 1, "timestep_spacing": "trailing"}`))
	f.Add([]byte(`{"num_train_timesteps": 4, "trained_betas": [0.5, 0.5, 0.5, 0.999], "skip_prk_steps": false}`))
	f.Add([]byte(`{"lambda_min_clipped": -Infinity, "beta_end": NaN}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.NumTrainTimesteps > 5000 || len(c.TrainedBetas) > 5000 {
			return // keep each fuzz input cheap
		}
		x := []float32{0.5, -1, 2, 0}
		for _, name := range []string{"ddim", "dpm++2m", "pndm", "plms", "euler_a", "ddpm"} {
			s, err := New(name, c)
			if err != nil {
				continue
			}
			for _, n := range []int{1, 2, 5} {
				if s.SetTimesteps(n) != nil {
					continue
				}
				rng := func() float64 { return 0.25 }
				for k := range s.Timesteps() {
					_ = s.ScaleModelInput(x, k)
					if _, _, err := s.Step(x, k, x, rng); err != nil {
						t.Fatalf("%s n=%d step %d: %v", name, n, k, err)
					}
				}
			}
		}
	})
}
