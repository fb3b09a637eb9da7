package scheduler

import "fmt"

// ddim is DDIMScheduler with eta = 0 (deterministic).
type ddim struct {
	base
	n          int
	finalAlpha float32 // acp used when the previous timestep is below 0
}

func newDDIM(name string, c Config, t Tables) (Scheduler, error) {
	d := &ddim{base: base{name: name, cfg: c, tables: t}}
	d.finalAlpha = t.AlphasCumprod[0]
	if c.SetAlphaToOne {
		d.finalAlpha = 1
	}
	return d, nil
}

func (d *ddim) SetTimesteps(n int) error {
	if err := checkSteps(n, d.cfg.NumTrainTimesteps); err != nil {
		return fmt.Errorf("scheduler %s: %w", d.name, err)
	}
	ts, err := spacedTimesteps(d.cfg, d.cfg.spacing("leading"), n)
	if err != nil {
		return fmt.Errorf("scheduler %s: %w", d.name, err)
	}
	d.ts, d.n = ts, n
	return nil
}

func (d *ddim) Reset() {}

func (d *ddim) Step(modelOutput []float32, stepIndex int, x []float32, rng func() float64) ([]float32, []float32, error) {
	if err := d.checkStep(modelOutput, stepIndex, x); err != nil {
		return nil, nil, err
	}
	t := d.ts[stepIndex]
	// diffusers steps back by a fixed stride, whatever the spacing.
	prevT := t - d.cfg.NumTrainTimesteps/d.n
	acp := d.tables.AlphasCumprod
	aT := acp[t]
	aPrev := d.finalAlpha
	if prevT >= 0 {
		aPrev = acp[prevT]
	}
	x0, eps := predictX0Eps(d.cfg.predictionType(), aT, modelOutput, x)
	if d.cfg.ClipSample {
		clip(x0, d.cfg.ClipSampleRange)
		// diffusers re-derives eps from the clipped x0 only with
		// use_clipped_model_output, which the pipelines leave off.
	}
	prev := lincomb(sqrt32(aPrev), x0, sqrt32(1-aPrev), eps)
	return prev, x0, nil
}

// predictX0Eps converts a model output at cumulative alpha a into the
// predicted x0 and noise, as DDIM's step does for each prediction type.
func predictX0Eps(predType string, a float32, out, x []float32) (x0, eps []float32) {
	sa, sb := sqrt32(a), sqrt32(1-a)
	switch predType {
	case "sample":
		x0 = append([]float32(nil), out...)
		eps = make([]float32, len(x))
		for i := range x {
			eps[i] = (x[i] - float32(sa*x0[i])) / sb
		}
	case "v_prediction":
		x0 = lincomb(sa, x, -sb, out)
		eps = lincomb(sa, out, sb, x)
	default:
		x0 = make([]float32, len(x))
		for i := range x {
			x0[i] = (x[i] - float32(sb*out[i])) / sa
		}
		eps = append([]float32(nil), out...)
	}
	return x0, eps
}
