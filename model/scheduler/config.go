// Package scheduler implements the Stable Diffusion noise schedules and
// samplers (DDIM, DPM-Solver++ 2M, PNDM/PLMS, Euler ancestral, DDPM) with the
// semantics of diffusers 0.19.3, in float32 on the host.
//
// Scalars are computed the way torch computes them (float32 0-d tensors) and
// every element-wise operation rounds to float32 after each step, so results
// stay within float32 rounding of the reference implementation.
package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// Config holds the scheduler_config.json fields this package uses.
//
// Empty strings and a zero SolverOrder mean "the default of the scheduler
// being built": TimestepSpacing in particular defaults to "leading" for DDIM,
// DDPM and PNDM but to "linspace" for DPM-Solver and Euler ancestral, which
// is what diffusers' from_config does with SD v1 configs that lack the key.
// Booleans have no such marker: build a Config by hand from DefaultConfig(),
// not from the zero value (LowerOrderFinal defaults to true).
type Config struct {
	NumTrainTimesteps int
	BetaStart         float64
	BetaEnd           float64
	BetaSchedule      string    // linear | scaled_linear | squaredcos_cap_v2
	TrainedBetas      []float64 // overrides the schedule when non-nil
	PredictionType    string    // epsilon | v_prediction | sample
	StepsOffset       int
	SetAlphaToOne     bool
	TimestepSpacing   string // leading | trailing | linspace
	SolverOrder       int    // DPM-Solver: 1 or 2
	AlgorithmType     string // DPM-Solver: dpmsolver++ | dpmsolver
	SolverType        string // DPM-Solver: midpoint | heun
	LowerOrderFinal   bool   // DPM-Solver
	SkipPRKSteps      bool   // PNDM
	ClipSample        bool   // DDIM, DDPM
	ClipSampleRange   float64
}

// maxTrainTimesteps bounds the tables built from a (possibly hostile) config.
const maxTrainTimesteps = 100000

// DefaultConfig returns diffusers' defaults for the keys shared by every
// scheduler (the ones a config file leaves out).
func DefaultConfig() Config {
	return Config{
		NumTrainTimesteps: 1000,
		BetaStart:         0.0001,
		BetaEnd:           0.02,
		BetaSchedule:      "linear",
		PredictionType:    "epsilon",
		SolverOrder:       2,
		AlgorithmType:     "dpmsolver++",
		SolverType:        "midpoint",
		LowerOrderFinal:   true,
		ClipSampleRange:   1.0,
	}
}

// classDefaults returns the defaults that differ between diffusers classes:
// a key missing from a file takes the default of the file's own class.
func classDefaults(class string) (setAlphaToOne, clipSample bool) {
	switch class {
	case "DDIMScheduler":
		return true, true
	case "DDPMScheduler":
		return false, true
	}
	return false, false
}

// ParseConfig reads a diffusers scheduler_config.json. It accepts the bare
// NaN/Infinity/-Infinity tokens Python's json writes, fills keys that are
// missing with diffusers' defaults (those of the file's _class_name where the
// classes differ), and rejects settings that would change the result but are
// not implemented here (thresholding, Karras sigmas, zero-SNR rescaling,
// learned variance, a finite lambda_min_clipped).
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(quoteNonFinite(data), &raw); err != nil {
		return Config{}, fmt.Errorf("scheduler: parse config: %w", err)
	}
	c := DefaultConfig()
	var class string
	if err := getJSON(raw, "_class_name", &class); err != nil {
		return Config{}, err
	}
	c.SetAlphaToOne, c.ClipSample = classDefaults(class)

	var trained []jsonFloat
	fields := []struct {
		key string
		dst any
	}{
		{"num_train_timesteps", &c.NumTrainTimesteps},
		{"beta_schedule", &c.BetaSchedule},
		{"trained_betas", &trained},
		{"prediction_type", &c.PredictionType},
		{"steps_offset", &c.StepsOffset},
		{"set_alpha_to_one", &c.SetAlphaToOne},
		{"timestep_spacing", &c.TimestepSpacing},
		{"solver_order", &c.SolverOrder},
		{"algorithm_type", &c.AlgorithmType},
		{"solver_type", &c.SolverType},
		{"lower_order_final", &c.LowerOrderFinal},
		{"skip_prk_steps", &c.SkipPRKSteps},
		{"clip_sample", &c.ClipSample},
	}
	for _, f := range fields {
		if err := getJSON(raw, f.key, f.dst); err != nil {
			return Config{}, err
		}
	}
	floats := []struct {
		key string
		dst *float64
	}{
		{"beta_start", &c.BetaStart},
		{"beta_end", &c.BetaEnd},
		{"clip_sample_range", &c.ClipSampleRange},
	}
	for _, f := range floats {
		var v jsonFloat
		v.v = *f.dst
		if err := getJSON(raw, f.key, &v); err != nil {
			return Config{}, err
		}
		*f.dst = v.v
	}
	if trained != nil {
		if len(trained) > maxTrainTimesteps {
			return Config{}, fmt.Errorf("scheduler: config trained_betas: %d values, more than %d", len(trained), maxTrainTimesteps)
		}
		c.TrainedBetas = make([]float64, len(trained))
		for i, b := range trained {
			c.TrainedBetas[i] = b.v
		}
	}
	if err := rejectUnsupported(raw); err != nil {
		return Config{}, err
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// rejectUnsupported fails on keys whose non-default value would change the
// samples in a way this package does not implement; silently ignoring them
// would give plausible but wrong images.
func rejectUnsupported(raw map[string]json.RawMessage) error {
	for _, key := range []string{"thresholding", "use_karras_sigmas", "rescale_betas_zero_snr"} {
		var on bool
		if err := getJSON(raw, key, &on); err != nil {
			return err
		}
		if on {
			return fmt.Errorf("scheduler: config %s=true is not supported", key)
		}
	}
	var variance string
	if err := getJSON(raw, "variance_type", &variance); err != nil {
		return err
	}
	if variance != "" && variance != "fixed_small" {
		return fmt.Errorf("scheduler: config variance_type %q is not supported (only fixed_small)", variance)
	}
	lambda := jsonFloat{v: math.Inf(-1)}
	if err := getJSON(raw, "lambda_min_clipped", &lambda); err != nil {
		return err
	}
	if !math.IsInf(lambda.v, -1) {
		return fmt.Errorf("scheduler: config lambda_min_clipped=%g is not supported (only -Infinity)", lambda.v)
	}
	return nil
}

// getJSON decodes raw[key] into dst when the key is present and not null.
func getJSON(raw map[string]json.RawMessage, key string, dst any) error {
	v, ok := raw[key]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("scheduler: config %s: %w", key, err)
	}
	return nil
}

// jsonFloat is a number that may also be one of the strings quoteNonFinite
// produces for Python's non-finite tokens.
type jsonFloat struct{ v float64 }

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		switch s {
		case "NaN":
			f.v = math.NaN()
		case "Infinity":
			f.v = math.Inf(1)
		case "-Infinity":
			f.v = math.Inf(-1)
		default:
			return fmt.Errorf("not a number: %q", s)
		}
		return nil
	}
	return json.Unmarshal(b, &f.v)
}

// quoteNonFinite rewrites the bare tokens NaN, Infinity and -Infinity that
// Python's json module writes into JSON strings, leaving string contents
// untouched, so encoding/json accepts the document.
func quoteNonFinite(data []byte) []byte {
	tokens := [][]byte{[]byte("-Infinity"), []byte("Infinity"), []byte("NaN")}
	out := make([]byte, 0, len(data)+16)
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		ch := data[i]
		if inString {
			out = append(out, ch)
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
			continue
		}
		if ch == '"' {
			inString = true
			out = append(out, ch)
			continue
		}
		matched := false
		for _, tok := range tokens {
			if bytes.HasPrefix(data[i:], tok) {
				out = append(out, '"')
				out = append(out, tok...)
				out = append(out, '"')
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, ch)
		}
	}
	return out
}

// validate checks the fields shared by every scheduler.
func (c Config) validate() error {
	if c.NumTrainTimesteps <= 0 || c.NumTrainTimesteps > maxTrainTimesteps {
		return fmt.Errorf("scheduler: config num_train_timesteps %d out of range [1, %d]", c.NumTrainTimesteps, maxTrainTimesteps)
	}
	if c.TrainedBetas != nil && len(c.TrainedBetas) != c.NumTrainTimesteps {
		return fmt.Errorf("scheduler: config trained_betas has %d values, num_train_timesteps is %d", len(c.TrainedBetas), c.NumTrainTimesteps)
	}
	switch c.PredictionType {
	case "", "epsilon", "v_prediction", "sample":
	default:
		return fmt.Errorf("scheduler: config prediction_type %q (want epsilon, v_prediction or sample)", c.PredictionType)
	}
	switch c.TimestepSpacing {
	case "", "leading", "trailing", "linspace":
	default:
		return fmt.Errorf("scheduler: config timestep_spacing %q (want leading, trailing or linspace)", c.TimestepSpacing)
	}
	if c.StepsOffset < 0 || c.StepsOffset >= c.NumTrainTimesteps {
		return fmt.Errorf("scheduler: config steps_offset %d out of range [0, %d)", c.StepsOffset, c.NumTrainTimesteps)
	}
	if c.ClipSample && !(c.ClipSampleRange > 0) {
		return fmt.Errorf("scheduler: config clip_sample_range %g must be positive", c.ClipSampleRange)
	}
	return nil
}

// predictionType resolves the empty default.
func (c Config) predictionType() string {
	if c.PredictionType == "" {
		return "epsilon"
	}
	return c.PredictionType
}

// spacing resolves the empty default to the scheduler's own default.
func (c Config) spacing(def string) string {
	if c.TimestepSpacing == "" {
		return def
	}
	return c.TimestepSpacing
}
