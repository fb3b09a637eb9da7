package config

import (
	"fmt"
	"math"
	"reflect"
	"strings"
)

// Scheduler class names of diffusers.
const (
	DDPM               = "DDPMScheduler"
	DDIM               = "DDIMScheduler"
	PNDM               = "PNDMScheduler"
	DPMSolverMultistep = "DPMSolverMultistepScheduler"
	EulerAncestral     = "EulerAncestralDiscreteScheduler"
	EulerDiscrete      = "EulerDiscreteScheduler"
	LMSDiscrete        = "LMSDiscreteScheduler"
)

// Scheduler is the union of the keys of diffusers' DDPM, DDIM, PNDM,
// DPMSolverMultistep and Euler(Ancestral) scheduler configs
// (scheduler/scheduler_config.json). Keys a class does not have keep the
// defaults of the class that does.
type Scheduler struct {
	ClassName         string    `json:"_class_name"`
	NumTrainTimesteps int       `json:"num_train_timesteps"`
	BetaStart         float64   `json:"beta_start"`
	BetaEnd           float64   `json:"beta_end"`
	BetaSchedule      string    `json:"beta_schedule"` // linear, scaled_linear, squaredcos_cap_v2
	TrainedBetas      []float64 `json:"trained_betas"`
	PredictionType    string    `json:"prediction_type"` // epsilon, v_prediction, sample
	StepsOffset       int       `json:"steps_offset"`
	TimestepSpacing   string    `json:"timestep_spacing"` // leading, trailing, linspace
	// DDIM / PNDM.
	SetAlphaToOne bool `json:"set_alpha_to_one"`
	SkipPRKSteps  bool `json:"skip_prk_steps"`
	// DDPM / DDIM.
	ClipSample          bool    `json:"clip_sample"`
	ClipSampleRange     float64 `json:"clip_sample_range"`
	VarianceType        string  `json:"variance_type"`
	RescaleBetasZeroSNR bool    `json:"rescale_betas_zero_snr"`
	// Dynamic thresholding (DDPM, DDIM, DPM-Solver).
	Thresholding             bool    `json:"thresholding"`
	DynamicThresholdingRatio float64 `json:"dynamic_thresholding_ratio"`
	SampleMaxValue           float64 `json:"sample_max_value"`
	// DPM-Solver multistep.
	SolverOrder      int     `json:"solver_order"`
	AlgorithmType    string  `json:"algorithm_type"`
	SolverType       string  `json:"solver_type"`
	LowerOrderFinal  bool    `json:"lower_order_final"`
	UseKarrasSigmas  bool    `json:"use_karras_sigmas"`
	LambdaMinClipped float64 `json:"lambda_min_clipped"` // -Inf by default (Python writes -Infinity)
	// Euler.
	InterpolationType string `json:"interpolation_type"`

	// set lists the JSON keys the file gave, so WithClass can re-apply
	// another class's defaults to the others, as diffusers' from_config does.
	set map[string]bool
}

// DefaultScheduler returns the diffusers 0.19 defaults of a scheduler class.
// Unknown classes get the DDPM-style defaults shared by most classes.
func DefaultScheduler(class string) Scheduler {
	s := Scheduler{
		ClassName:                class,
		NumTrainTimesteps:        1000,
		BetaStart:                0.0001,
		BetaEnd:                  0.02,
		BetaSchedule:             "linear",
		PredictionType:           "epsilon",
		TimestepSpacing:          "leading",
		ClipSampleRange:          1,
		DynamicThresholdingRatio: 0.995,
		SampleMaxValue:           1,
		SolverOrder:              2,
		AlgorithmType:            "dpmsolver++",
		SolverType:               "midpoint",
		LowerOrderFinal:          true,
		LambdaMinClipped:         math.Inf(-1),
		InterpolationType:        "linear",
	}
	switch class {
	case DDPM:
		s.ClipSample = true
		s.VarianceType = "fixed_small"
	case DDIM:
		s.ClipSample = true
		s.SetAlphaToOne = true
	case PNDM:
	case DPMSolverMultistep, EulerAncestral, EulerDiscrete, LMSDiscrete:
		s.TimestepSpacing = "linspace"
	}
	return s
}

// LoadScheduler reads and validates a scheduler config file.
func LoadScheduler(path string) (Scheduler, error) {
	b, err := readFile(path)
	if err != nil {
		return Scheduler{}, fmt.Errorf("config: scheduler: %w", err)
	}
	s, err := ParseScheduler(b)
	if err != nil {
		return Scheduler{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return s, nil
}

// ParseScheduler parses a scheduler config with the defaults of its
// _class_name and validates it.
func ParseScheduler(b []byte) (Scheduler, error) {
	var head struct {
		ClassName string `json:"_class_name"`
	}
	if _, err := decode(b, &head); err != nil {
		return Scheduler{}, fmt.Errorf("config: scheduler: %w", err)
	}
	s := DefaultScheduler(head.ClassName)
	raw, err := decode(b, &s)
	if err != nil {
		return Scheduler{}, fmt.Errorf("config: scheduler: %w", err)
	}
	s.set = map[string]bool{}
	for k := range raw {
		if !isNull(raw, k) {
			s.set[k] = true
		}
	}
	if err := s.Validate(); err != nil {
		return Scheduler{}, err
	}
	return s, nil
}

// WithClass is the config another scheduler class would build from this
// one (diffusers' Class.from_config(config)): the keys this config set
// explicitly are kept, every other key takes the new class's default. A
// config not parsed from a file (such as SD15Scheduler) counts as setting
// every key, as a config diffusers saved does.
func (s Scheduler) WithClass(class string) Scheduler {
	out := DefaultScheduler(class)
	src, dst := reflect.ValueOf(s), reflect.ValueOf(&out).Elem()
	for i := range src.NumField() {
		f := src.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || key == "" || key == "_class_name" {
			continue
		}
		if s.set == nil || s.set[key] {
			dst.Field(i).Set(src.Field(i))
		}
	}
	if out.TrainedBetas != nil {
		out.TrainedBetas = append([]float64(nil), out.TrainedBetas...)
	}
	if s.set != nil {
		out.set = make(map[string]bool, len(s.set))
		for k, v := range s.set {
			out.set[k] = v
		}
	}
	return out
}

// Validate checks the values are in the ranges diffusers accepts.
func (s Scheduler) Validate() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("config: scheduler: "+format, a...)
	}
	if s.NumTrainTimesteps < 1 || s.NumTrainTimesteps > 100000 {
		return fail("num_train_timesteps %d is not in 1..100000", s.NumTrainTimesteps)
	}
	if s.TrainedBetas != nil {
		if len(s.TrainedBetas) != s.NumTrainTimesteps {
			return fail("trained_betas has %d values for %d train timesteps", len(s.TrainedBetas), s.NumTrainTimesteps)
		}
		for i, b := range s.TrainedBetas {
			if !(b > 0 && b < 1) {
				return fail("trained_betas[%d] = %g is not in (0, 1)", i, b)
			}
		}
	} else {
		switch s.BetaSchedule {
		case "linear", "scaled_linear":
			if !(s.BetaStart > 0 && s.BetaStart <= s.BetaEnd && s.BetaEnd < 1) {
				return fail("beta_start %g and beta_end %g must satisfy 0 < start <= end < 1", s.BetaStart, s.BetaEnd)
			}
		case "squaredcos_cap_v2":
		default:
			return fail("beta_schedule %q is not supported (want linear, scaled_linear or squaredcos_cap_v2)", s.BetaSchedule)
		}
	}
	if !oneOf(s.PredictionType, "epsilon", "v_prediction", "sample") {
		return fail("prediction_type %q is not supported (want epsilon, v_prediction or sample)", s.PredictionType)
	}
	if !oneOf(s.TimestepSpacing, "leading", "trailing", "linspace") {
		return fail("timestep_spacing %q is not supported (want leading, trailing or linspace)", s.TimestepSpacing)
	}
	if s.StepsOffset < 0 || s.StepsOffset >= s.NumTrainTimesteps {
		return fail("steps_offset %d is not in 0..%d", s.StepsOffset, s.NumTrainTimesteps-1)
	}
	if s.SolverOrder < 1 || s.SolverOrder > 3 {
		return fail("solver_order %d is not in 1..3", s.SolverOrder)
	}
	if !oneOf(s.AlgorithmType, "dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++") {
		return fail("algorithm_type %q is not supported", s.AlgorithmType)
	}
	if !oneOf(s.SolverType, "midpoint", "heun") {
		return fail("solver_type %q is not supported (want midpoint or heun)", s.SolverType)
	}
	return nil
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}
