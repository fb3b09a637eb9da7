package scheduler

import (
	"fmt"
	"math"
)

// eulerA is EulerAncestralDiscreteScheduler: Euler steps in the
// variance-exploding parameterisation x = x0 + sigma*eps, with
// sigma = sqrt((1-acp)/acp), each followed by fresh noise (ancestral).
type eulerA struct {
	base
	fullSigmas []float32 // sigma of every training timestep
	times      []float64 // exact (possibly fractional) timesteps
	sigmas     []float32 // sigma at each step, then a final 0
}

func newEulerA(name string, c Config, t Tables) (Scheduler, error) {
	e := &eulerA{base: base{name: name, cfg: c, tables: t}}
	e.fullSigmas = make([]float32, len(t.AlphasCumprod))
	for i, a := range t.AlphasCumprod {
		e.fullSigmas[i] = sqrt32((1 - a) / a)
	}
	return e, nil
}

func (e *eulerA) SetTimesteps(n int) error {
	N := e.cfg.NumTrainTimesteps
	if err := checkSteps(n, N); err != nil {
		return fmt.Errorf("scheduler %s: %w", e.name, err)
	}
	var times []float64
	switch sp := e.cfg.spacing("linspace"); sp {
	case "linspace":
		// Not rounded: Euler interpolates sigma between training steps.
		lin := numpyLinspace(0, float64(N-1), n)
		times = make([]float64, n)
		for i, v := range lin {
			times[n-1-i] = v
		}
	default:
		ts, err := spacedTimesteps(e.cfg, sp, n)
		if err != nil {
			return fmt.Errorf("scheduler %s: %w", e.name, err)
		}
		times = make([]float64, len(ts))
		for i, t := range ts {
			times[i] = float64(t)
		}
	}
	ints := make([]int, len(times))
	sigmas := make([]float32, len(times)+1)
	for i, t := range times {
		if !(t >= 0 && t <= float64(N-1)) {
			return fmt.Errorf("scheduler %s: timestep %g outside [0, %d]", e.name, t, N-1)
		}
		ints[i] = int(math.RoundToEven(t))
		sigmas[i] = float32(interp(t, e.fullSigmas))
	}
	e.times, e.ts, e.sigmas = times, ints, sigmas
	return nil
}

// interp is np.interp(x, arange(len(fp)), fp) for x inside the range.
func interp(x float64, fp []float32) float64 {
	j := int(math.Floor(x))
	if j >= len(fp)-1 {
		return float64(fp[len(fp)-1])
	}
	if float64(j) == x {
		return float64(fp[j])
	}
	slope := float64(fp[j+1]) - float64(fp[j])
	return float64(slope*(x-float64(j))) + float64(fp[j])
}

func (e *eulerA) TimestepValues() []float64 { return append([]float64(nil), e.times...) }

func (e *eulerA) Reset() {}

// InitNoiseSigma is sqrt(sigma_max^2 + 1): the initial latent must have
// the variance of x0 + sigma_max*eps.
func (e *eulerA) InitNoiseSigma() float64 {
	var m float32
	for _, s := range e.sigmas {
		m = max(m, s)
	}
	if len(e.sigmas) == 0 {
		m = e.fullSigmas[len(e.fullSigmas)-1]
	}
	return float64(sqrt32(m*m + 1))
}

// ScaleModelInput divides by sqrt(sigma^2+1), which maps the VE latent back
// to the unit-variance input the UNet was trained on. An out-of-range index
// returns the input unchanged (Step reports the error).
func (e *eulerA) ScaleModelInput(x []float32, stepIndex int) []float32 {
	out := append([]float32(nil), x...)
	if stepIndex < 0 || stepIndex >= len(e.ts) {
		return out
	}
	s := e.sigmas[stepIndex]
	d := sqrt32(s*s + 1)
	for i := range out {
		out[i] /= d
	}
	return out
}

func (e *eulerA) Step(modelOutput []float32, stepIndex int, x []float32, rng func() float64) ([]float32, []float32, error) {
	if err := e.checkStep(modelOutput, stepIndex, x); err != nil {
		return nil, nil, err
	}
	sigma := e.sigmas[stepIndex]
	x0 := make([]float32, len(x))
	switch e.cfg.predictionType() {
	case "v_prediction":
		s2 := sigma*sigma + 1
		c := -sigma / sqrt32(s2)
		for i := range x0 {
			x0[i] = float32(modelOutput[i]*c) + x[i]/s2
		}
	case "sample":
		copy(x0, modelOutput)
	default:
		for i := range x0 {
			x0[i] = x[i] - float32(sigma*modelOutput[i])
		}
	}
	to := e.sigmas[stepIndex+1]
	from2, to2 := sigma*sigma, to*to
	up := sqrt32(float32(to2*(from2-to2)) / from2)
	// to^4/from^2 >= 0 exactly; rounding must not turn it into a NaN.
	down := sqrt32(max(to2-up*up, 0))
	dt := down - sigma
	prev := make([]float32, len(x))
	for i := range prev {
		deriv := (x[i] - x0[i]) / sigma
		prev[i] = x[i] + float32(deriv*dt)
	}
	if up > 0 {
		z, err := noise(e.name, rng, len(x))
		if err != nil {
			return nil, nil, err
		}
		for i := range prev {
			prev[i] += float32(z[i] * up)
		}
	}
	return prev, x0, nil
}
