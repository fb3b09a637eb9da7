package scheduler

import "fmt"

// ddpm is DDPMScheduler's ancestral sampler with the fixed_small variance:
// each step samples the posterior q(x_prev | x_t, x0) around the predicted
// x0.
type ddpm struct {
	base
	n int
}

func newDDPM(name string, c Config, t Tables) (Scheduler, error) {
	return &ddpm{base: base{name: name, cfg: c, tables: t}}, nil
}

func (d *ddpm) SetTimesteps(n int) error {
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

func (d *ddpm) Reset() {}

func (d *ddpm) Step(modelOutput []float32, stepIndex int, x []float32, rng func() float64) ([]float32, []float32, error) {
	if err := d.checkStep(modelOutput, stepIndex, x); err != nil {
		return nil, nil, err
	}
	t := d.ts[stepIndex]
	prevT := t - d.cfg.NumTrainTimesteps/d.n
	acp := d.tables.AlphasCumprod
	a := acp[t]
	aPrev := float32(1)
	if prevT >= 0 {
		aPrev = acp[prevT]
	}
	b, bPrev := 1-a, 1-aPrev
	curAlpha := a / aPrev
	curBeta := 1 - curAlpha

	x0, _ := predictX0Eps(d.cfg.predictionType(), a, modelOutput, x)
	if d.cfg.ClipSample {
		clip(x0, d.cfg.ClipSampleRange)
	}
	// Posterior mean coefficients (formula 7 of the DDPM paper).
	cx0 := float32(sqrt32(aPrev)*curBeta) / b
	cx := float32(sqrt32(curAlpha)*bPrev) / b
	prev := lincomb(cx0, x0, cx, x)
	if t > 0 {
		variance := max(float32(bPrev/b)*curBeta, 1e-20)
		z, err := noise(d.name, rng, len(x))
		if err != nil {
			return nil, nil, err
		}
		std := sqrt32(variance)
		for i := range prev {
			prev[i] += float32(std * z[i])
		}
	}
	return prev, x0, nil
}
