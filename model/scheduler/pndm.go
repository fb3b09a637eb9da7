package scheduler

import "fmt"

// pndm is PNDMScheduler: pseudo Runge-Kutta warm-up steps (unless
// skip_prk_steps) followed by pseudo linear multistep (PLMS) steps. With
// skip_prk_steps the second timestep is repeated: the second call redoes the
// first step with the average of the two noise estimates.
type pndm struct {
	base
	n        int
	skipPRK  bool
	prkSteps int // how many leading entries of ts are PRK steps
	stride   int // num_train_timesteps / n

	// History, as diffusers keeps it: ets are the last (up to 4) noise
	// estimates, counter the number of calls since the reset, curSample the
	// sample the current PRK/first-PLMS step started from, curOut the
	// running PRK average.
	ets       [][]float32
	counter   int
	curSample []float32
	curOut    []float32
	order
}

func newPNDM(name string, c Config, t Tables) (Scheduler, error) {
	if c.predictionType() == "sample" {
		return nil, fmt.Errorf("prediction_type sample is not supported by PNDM (epsilon or v_prediction)")
	}
	p := &pndm{base: base{name: name, cfg: c, tables: t}, skipPRK: c.SkipPRKSteps || name == "plms"}
	p.Reset()
	return p, nil
}

func (p *pndm) SetTimesteps(n int) error {
	N := p.cfg.NumTrainTimesteps
	if err := checkSteps(n, N); err != nil {
		return fmt.Errorf("scheduler %s: %w", p.name, err)
	}
	// The base list in ascending order, as PNDM keeps it.
	var asc []int
	switch sp := p.cfg.spacing("leading"); sp {
	case "trailing":
		asc = reverseInts(trailingTimesteps(N, n))
	default:
		desc, err := spacedTimesteps(p.cfg, sp, n)
		if err != nil {
			return fmt.Errorf("scheduler %s: %w", p.name, err)
		}
		asc = reverseInts(desc)
	}
	stride := N / n
	var ts []int
	prk := 0
	if p.skipPRK {
		// _timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:], reversed.
		k := len(asc)
		seq := append([]int(nil), asc[:k-1]...)
		if k >= 2 {
			seq = append(seq, asc[k-2])
		}
		seq = append(seq, asc[k-1])
		ts = reverseInts(seq)
	} else {
		const pndmOrder = 4
		if len(asc) < pndmOrder {
			return fmt.Errorf("scheduler %s: PRK warm-up needs at least %d steps, got %d", p.name, pndmOrder, len(asc))
		}
		// The last 4 base timesteps, each followed by its half-stride
		// midpoint, each value doubled, ends trimmed, reversed.
		var pairs []int
		for _, t := range asc[len(asc)-pndmOrder:] {
			pairs = append(pairs, t, t+stride/2)
		}
		pairs = pairs[:len(pairs)-1]
		var rep []int
		for _, t := range pairs {
			rep = append(rep, t, t)
		}
		prkTs := reverseInts(rep[1 : len(rep)-1])
		prk = len(prkTs)
		ts = append(prkTs, reverseInts(asc[:len(asc)-3])...)
	}
	if err := checkTimesteps(ts, N); err != nil {
		return fmt.Errorf("scheduler %s: %w", p.name, err)
	}
	p.ts, p.n, p.stride, p.prkSteps = ts, n, stride, prk
	p.Reset()
	return nil
}

func (p *pndm) Reset() {
	p.ets, p.counter, p.curSample, p.curOut = nil, 0, nil, nil
	p.order.reset()
}

func (p *pndm) Step(modelOutput []float32, stepIndex int, x []float32, rng func() float64) ([]float32, []float32, error) {
	if err := p.checkStep(modelOutput, stepIndex, x); err != nil {
		return nil, nil, err
	}
	if err := p.order.check(p.name, stepIndex); err != nil {
		return nil, nil, err
	}
	if len(p.ets) > 0 && len(p.ets[0]) != len(x) {
		return nil, nil, fmt.Errorf("scheduler %s: sample has %d values, the previous step had %d", p.name, len(x), len(p.ets[0]))
	}
	var prev, x0 []float32
	var err error
	if !p.skipPRK && p.counter < p.prkSteps {
		prev, x0, err = p.stepPRK(modelOutput, p.ts[stepIndex], x)
	} else {
		prev, x0, err = p.stepPLMS(modelOutput, p.ts[stepIndex], x)
	}
	if err != nil {
		return nil, nil, err
	}
	p.counter++
	p.order.advance(stepIndex)
	return prev, x0, nil
}

// stepPRK is one of the four sub-steps of a Runge-Kutta warm-up step.
func (p *pndm) stepPRK(out []float32, t int, x []float32) ([]float32, []float32, error) {
	diff := p.stride / 2
	if p.counter%2 == 1 {
		diff = 0
	}
	prevT := t - diff
	t = p.ts[p.counter/4*4]
	switch p.counter % 4 {
	case 0:
		p.curOut = scaled(1.0/6, out)
		p.ets = append(p.ets, append([]float32(nil), out...))
		p.curSample = append([]float32(nil), x...)
	case 1, 2:
		addScaled(p.curOut, 1.0/3, out)
	case 3:
		e := p.curOut
		addScaled(e, 1.0/6, out)
		out, p.curOut = e, nil
	}
	return p.prevSample(p.curSample, t, prevT, out)
}

// stepPLMS is the linear multistep step (Adams-Bashforth weights on the
// stored noise estimates).
func (p *pndm) stepPLMS(out []float32, t int, x []float32) ([]float32, []float32, error) {
	if !p.skipPRK && len(p.ets) < 3 {
		return nil, nil, fmt.Errorf("scheduler %s: PLMS step with %d stored estimates, needs the PRK warm-up", p.name, len(p.ets))
	}
	prevT := t - p.stride
	if p.counter != 1 {
		if len(p.ets) > 3 {
			p.ets = p.ets[len(p.ets)-3:]
		}
		p.ets = append(p.ets, append([]float32(nil), out...))
	} else {
		prevT = t
		t += p.stride
	}
	e := p.ets
	k := len(e)
	var eps []float32
	switch {
	case k == 1 && p.counter == 0:
		eps = out
		p.curSample = append([]float32(nil), x...)
	case k == 1 && p.counter == 1:
		eps = make([]float32, len(out))
		for i := range eps {
			eps[i] = (out[i] + e[0][i]) / 2
		}
		x = p.curSample
		p.curSample = nil
	case k == 2:
		eps = make([]float32, len(out))
		for i := range eps {
			eps[i] = (float32(3*e[1][i]) - e[0][i]) / 2
		}
	case k == 3:
		eps = make([]float32, len(out))
		for i := range eps {
			eps[i] = float32(float32(23*e[2][i])-float32(16*e[1][i])+float32(5*e[0][i])) / 12
		}
	default:
		eps = make([]float32, len(out))
		for i := range eps {
			s := float32(float32(float32(55*e[3][i])-float32(59*e[2][i]))+float32(37*e[1][i])) - float32(9*e[0][i])
			eps[i] = float32(1.0/24) * s
		}
	}
	return p.prevSample(x, t, prevT, eps)
}

// prevSample is PNDM's transfer x_t -> x_prev (equation 9 of the PNDM
// paper, equal to a DDIM step), returning the x0 it implies too.
func (p *pndm) prevSample(x []float32, t, prevT int, out []float32) ([]float32, []float32, error) {
	if x == nil {
		return nil, nil, fmt.Errorf("scheduler %s: no stored sample for the repeated timestep", p.name)
	}
	acp := p.tables.AlphasCumprod
	if t < 0 || t >= len(acp) || prevT >= len(acp) {
		return nil, nil, fmt.Errorf("scheduler %s: timestep %d -> %d outside the tables", p.name, t, prevT)
	}
	a := acp[t]
	aPrev := acp[0]
	if p.cfg.SetAlphaToOne {
		aPrev = 1
	}
	if prevT >= 0 {
		aPrev = acp[prevT]
	}
	b, bPrev := 1-a, 1-aPrev
	eps := out
	if p.cfg.predictionType() == "v_prediction" {
		eps = lincomb(sqrt32(a), out, sqrt32(b), x)
	}
	sampleCoeff := sqrt32(aPrev / a)
	denom := float32(a*sqrt32(bPrev)) + sqrt32(a*b*aPrev)
	diff := aPrev - a
	prev := make([]float32, len(x))
	x0 := make([]float32, len(x))
	sa, sb := sqrt32(a), sqrt32(b)
	for i := range prev {
		prev[i] = float32(sampleCoeff*x[i]) - float32(diff*eps[i])/denom
		x0[i] = (x[i] - float32(sb*eps[i])) / sa
	}
	return prev, x0, nil
}

func scaled(a float32, x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = a * v
	}
	return out
}

func addScaled(dst []float32, a float32, x []float32) {
	for i, v := range x {
		dst[i] += float32(a * v)
	}
}
