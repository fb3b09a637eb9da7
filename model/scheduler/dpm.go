package scheduler

import (
	"fmt"
	"math"
)

// dpm is DPMSolverMultistepScheduler (diffusers 0.19.3) of order 1 or 2,
// with the dpmsolver++ (data prediction) or dpmsolver (noise prediction)
// algorithm. As in 0.19 the last step lands on timestep 0, not sigma = 0.
type dpm struct {
	base
	alpha, sigma, lambda []float32 // sqrt(acp), sqrt(1-acp), log(alpha)-log(sigma)
	algorithm, solver    string
	solverOrder          int

	// History: the converted model output of the previous step and how
	// many steps have run since the reset (capped at the solver order).
	prevOut    []float32
	lowerOrder int
	order
}

func newDPM(name string, c Config, t Tables) (Scheduler, error) {
	d := &dpm{base: base{name: name, cfg: c, tables: t}}
	d.algorithm, d.solver, d.solverOrder = c.AlgorithmType, c.SolverType, c.SolverOrder
	if d.algorithm == "" {
		d.algorithm = "dpmsolver++"
	}
	if d.solver == "" {
		d.solver = "midpoint"
	}
	if d.solverOrder == 0 {
		d.solverOrder = 2
	}
	switch d.algorithm {
	case "dpmsolver++", "dpmsolver":
	default:
		return nil, fmt.Errorf("algorithm_type %q is not supported (want dpmsolver++ or dpmsolver)", d.algorithm)
	}
	switch d.solver {
	case "midpoint", "heun":
	default:
		return nil, fmt.Errorf("solver_type %q (want midpoint or heun)", d.solver)
	}
	if d.solverOrder != 1 && d.solverOrder != 2 {
		return nil, fmt.Errorf("solver_order %d is not supported (want 1 or 2)", d.solverOrder)
	}
	n := len(t.AlphasCumprod)
	d.alpha, d.sigma, d.lambda = make([]float32, n), make([]float32, n), make([]float32, n)
	for i, a := range t.AlphasCumprod {
		d.alpha[i], d.sigma[i] = sqrt32(a), sqrt32(1-a)
		d.lambda[i] = log32(d.alpha[i]) - log32(d.sigma[i])
	}
	d.Reset()
	return d, nil
}

func log32(x float32) float32 { return float32(math.Log(float64(x))) }
func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

func (d *dpm) SetTimesteps(n int) error {
	N := d.cfg.NumTrainTimesteps
	if err := checkSteps(n, N); err != nil {
		return fmt.Errorf("scheduler %s: %w", d.name, err)
	}
	// DPM-Solver places n+1 points and drops the final one (t = 0 is the
	// target of the last step, not a step of its own).
	var ts []int
	switch sp := d.cfg.spacing("linspace"); sp {
	case "linspace":
		ts = reverseInts(roundInts(numpyLinspace(0, float64(N-1), n+1)))[:n]
	case "leading":
		ratio := N / (n + 1)
		ts = make([]int, n)
		for i := range ts {
			ts[i] = (n-i)*ratio + d.cfg.StepsOffset
		}
	case "trailing":
		ts = trailingTimesteps(N, n)
	default:
		return fmt.Errorf("scheduler %s: timestep_spacing %q", d.name, sp)
	}
	// Rounding makes duplicates when n is close to N; diffusers keeps the
	// first of each (np.unique), and the list is descending.
	uniq := ts[:0]
	for i, t := range ts {
		if i == 0 || t != uniq[len(uniq)-1] {
			uniq = append(uniq, t)
		}
	}
	if err := checkTimesteps(uniq, N); err != nil {
		return fmt.Errorf("scheduler %s: %w", d.name, err)
	}
	d.ts = uniq
	d.Reset()
	return nil
}

func (d *dpm) Reset() {
	d.prevOut, d.lowerOrder = nil, 0
	d.order.reset()
}

func (d *dpm) Step(modelOutput []float32, stepIndex int, x []float32, rng func() float64) ([]float32, []float32, error) {
	if err := d.checkStep(modelOutput, stepIndex, x); err != nil {
		return nil, nil, err
	}
	if err := d.order.check(d.name, stepIndex); err != nil {
		return nil, nil, err
	}
	if d.prevOut != nil && len(d.prevOut) != len(x) {
		return nil, nil, fmt.Errorf("scheduler %s: sample has %d values, the previous step had %d", d.name, len(x), len(d.prevOut))
	}
	last := stepIndex == len(d.ts)-1
	s0 := d.ts[stepIndex]
	t := 0
	if !last {
		t = d.ts[stepIndex+1]
	}
	m0, x0 := d.convert(modelOutput, s0, x)

	// lower_order_final: few-step runs end with a first-order step, which
	// is more stable than extrapolating over a long last interval.
	lowerFinal := last && d.cfg.LowerOrderFinal && len(d.ts) < 15
	var prev []float32
	if d.solverOrder == 1 || d.lowerOrder < 1 || lowerFinal {
		prev = d.firstOrder(m0, s0, t, x)
	} else {
		prev = d.secondOrder(m0, d.prevOut, s0, d.ts[stepIndex-1], t, x)
	}
	d.prevOut = m0
	if d.lowerOrder < d.solverOrder {
		d.lowerOrder++
	}
	d.order.advance(stepIndex)
	return prev, x0, nil
}

// convert turns the model output into what the solver extrapolates: the
// data prediction x0 for dpmsolver++, the noise for dpmsolver. It also
// returns x0 for the caller.
func (d *dpm) convert(out []float32, ts int, x []float32) (m, x0 []float32) {
	a, s := d.alpha[ts], d.sigma[ts]
	n := len(x)
	switch d.cfg.predictionType() {
	case "sample":
		x0 = append([]float32(nil), out...)
	case "v_prediction":
		x0 = lincomb(a, x, -s, out)
	default:
		x0 = make([]float32, n)
		for i := range x0 {
			x0[i] = (x[i] - float32(s*out[i])) / a
		}
	}
	if d.algorithm == "dpmsolver++" {
		return x0, x0
	}
	switch d.cfg.predictionType() {
	case "sample":
		m = make([]float32, n)
		for i := range m {
			m[i] = (x[i] - float32(a*out[i])) / s
		}
	case "v_prediction":
		m = lincomb(a, out, s, x)
	default:
		m = append([]float32(nil), out...)
	}
	return m, x0
}

// firstOrder is DPM-Solver(++)-1, i.e. DDIM in log-SNR time, from s to t.
func (d *dpm) firstOrder(m []float32, s, t int, x []float32) []float32 {
	h := d.lambda[t] - d.lambda[s]
	if d.algorithm == "dpmsolver++" {
		return lincomb(d.sigma[t]/d.sigma[s], x, -(d.alpha[t] * (exp32(-h) - 1)), m)
	}
	return lincomb(d.alpha[t]/d.alpha[s], x, -(d.sigma[t] * (exp32(h) - 1)), m)
}

// secondOrder is the multistep 2M update from s0 to t, using the output m1
// of the previous timestep s1.
func (d *dpm) secondOrder(m0, m1 []float32, s0, s1, t int, x []float32) []float32 {
	h := d.lambda[t] - d.lambda[s0]
	h0 := d.lambda[s0] - d.lambda[s1]
	invR0 := 1 / (h0 / h)
	var cx, c0, c1 float32
	if d.algorithm == "dpmsolver++" {
		e := exp32(-h) - 1
		cx, c0 = d.sigma[t]/d.sigma[s0], -(d.alpha[t] * e)
		if d.solver == "midpoint" {
			c1 = -(0.5 * (d.alpha[t] * e))
		} else {
			c1 = d.alpha[t] * (e/h + 1)
		}
	} else {
		e := exp32(h) - 1
		cx, c0 = d.alpha[t]/d.alpha[s0], -(d.sigma[t] * e)
		if d.solver == "midpoint" {
			c1 = -(0.5 * (d.sigma[t] * e))
		} else {
			c1 = -(d.sigma[t] * (e/h - 1))
		}
	}
	out := make([]float32, len(x))
	for i := range out {
		d1 := float32(invR0 * (m0[i] - m1[i]))
		out[i] = float32(float32(cx*x[i])+float32(c0*m0[i])) + float32(c1*d1)
	}
	return out
}
