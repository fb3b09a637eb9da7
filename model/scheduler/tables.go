package scheduler

import (
	"fmt"
	"math"
)

// Tables are the training noise schedule: Betas[t], Alphas[t] = 1-Betas[t]
// and AlphasCumprod[t] = prod_{s<=t} Alphas[s], in float32 exactly as torch
// builds them.
type Tables struct {
	Betas, Alphas, AlphasCumprod []float32
}

// NewTables builds the schedule of a config.
func NewTables(c Config) (Tables, error) {
	if err := c.validate(); err != nil {
		return Tables{}, err
	}
	n := c.NumTrainTimesteps
	var betas []float32
	switch {
	case c.TrainedBetas != nil:
		betas = make([]float32, n)
		for i, b := range c.TrainedBetas {
			betas[i] = float32(b)
		}
	case c.BetaSchedule == "linear" || c.BetaSchedule == "":
		betas = torchLinspace32(float32(c.BetaStart), float32(c.BetaEnd), n)
	case c.BetaSchedule == "scaled_linear":
		betas = torchLinspace32(float32(math.Sqrt(c.BetaStart)), float32(math.Sqrt(c.BetaEnd)), n)
		for i, b := range betas {
			betas[i] = b * b
		}
	case c.BetaSchedule == "squaredcos_cap_v2":
		betas = cosineBetas(n)
	default:
		return Tables{}, fmt.Errorf("scheduler: beta_schedule %q (want linear, scaled_linear or squaredcos_cap_v2)", c.BetaSchedule)
	}
	for i, b := range betas {
		// A beta outside (0, 1) makes a cumulative alpha of 0, 1 or negative,
		// and every sampler divides by sqrt(acp) or sqrt(1-acp).
		if !(b > 0 && b < 1) {
			return Tables{}, fmt.Errorf("scheduler: beta[%d] = %g is outside (0, 1)", i, b)
		}
	}
	alphas := make([]float32, n)
	acp := make([]float32, n)
	// torch's CPU cumprod accumulates float32 inputs in double and rounds
	// each partial product to float32.
	p := 1.0
	for i, b := range betas {
		alphas[i] = 1 - b
		p *= float64(alphas[i])
		acp[i] = float32(p)
	}
	return Tables{Betas: betas, Alphas: alphas, AlphasCumprod: acp}, nil
}

// torchLinspace32 reproduces torch.linspace(start, end, n, dtype=float32) on
// an AVX2 CPU bit for bit: the first half counts up from start and the
// second half down from end, the base of each 8-wide vector is computed with
// a fused multiply-add, and the lanes add multiples of the step to that base.
// A plain start+i*step differs in the last bit for about a quarter of the
// SD betas.
func torchLinspace32(start, end float32, n int) []float32 {
	out := make([]float32, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(n-1)
	half := n / 2
	at := func(i int) float32 {
		if i < half {
			return float32(math.FMA(float64(step), float64(i), float64(start)))
		}
		return float32(math.FMA(-float64(step), float64(n-i-1), float64(end)))
	}
	const lanes = 8
	i := 0
	for ; i+2*lanes <= n; i += 2 * lanes {
		for v := i; v < i+2*lanes; v += lanes {
			base := at(v)
			for j := 0; j < lanes; j++ {
				out[v+j] = base + float32(float32(j)*step)
			}
		}
	}
	for ; i < n; i++ {
		out[i] = at(i)
	}
	return out
}

// cosineBetas is diffusers' betas_for_alpha_bar (Nichol & Dhariwal's cosine
// schedule), computed in float64 and capped at 0.999 like the reference.
func cosineBetas(n int) []float32 {
	alphaBar := func(t float64) float64 {
		c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
		return c * c
	}
	out := make([]float32, n)
	for i := range out {
		t1 := float64(i) / float64(n)
		t2 := float64(i+1) / float64(n)
		out[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), 0.999))
	}
	return out
}

// sqrtAlphas returns sqrt(acp[t]) and sqrt(1-acp[t]) as float32, as torch's
// `acp[t] ** 0.5` and `(1 - acp[t]) ** 0.5` give them.
func (t Tables) sqrtAlphas(timestep int) (float32, float32, error) {
	if timestep < 0 || timestep >= len(t.AlphasCumprod) {
		return 0, 0, fmt.Errorf("scheduler: timestep %d outside [0, %d)", timestep, len(t.AlphasCumprod))
	}
	a := t.AlphasCumprod[timestep]
	return sqrt32(a), sqrt32(1 - a), nil
}

// AddNoise returns sqrt(acp[t])*x0 + sqrt(1-acp[t])*noise, the forward
// diffusion q(x_t | x_0) used by training.
func AddNoise(t Tables, x0, noise []float32, timestep int) ([]float32, error) {
	sa, sb, err := t.sqrtAlphas(timestep)
	if err != nil {
		return nil, fmt.Errorf("scheduler: add noise: %w", err)
	}
	if len(x0) != len(noise) {
		return nil, fmt.Errorf("scheduler: add noise: x0 has %d values, noise %d", len(x0), len(noise))
	}
	return lincomb(sa, x0, sb, noise), nil
}

// Velocity returns the v-prediction target sqrt(acp[t])*noise -
// sqrt(1-acp[t])*x0.
func Velocity(t Tables, x0, noise []float32, timestep int) ([]float32, error) {
	sa, sb, err := t.sqrtAlphas(timestep)
	if err != nil {
		return nil, fmt.Errorf("scheduler: velocity: %w", err)
	}
	if len(x0) != len(noise) {
		return nil, fmt.Errorf("scheduler: velocity: x0 has %d values, noise %d", len(x0), len(noise))
	}
	return lincomb(sa, noise, -sb, x0), nil
}

// sqrt32 is a correctly rounded float32 square root (what torch's pow(x,
// 0.5) and sqrt give).
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// lincomb returns a*x + b*y element-wise with float32 rounding after each
// product and the sum, as two torch tensor ops would. The explicit
// conversions keep the compiler from fusing them into FMAs.
func lincomb(a float32, x []float32, b float32, y []float32) []float32 {
	out := make([]float32, len(x))
	for i := range x {
		out[i] = float32(a*x[i]) + float32(b*y[i])
	}
	return out
}
