package scheduler

import (
	"fmt"
	"math"
)

// numpyLinspace reproduces np.linspace(start, stop, num) in float64: i*step
// + start with the last value set to stop.
func numpyLinspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(num-1)
	for i := range out {
		out[i] = float64(float64(i)*step) + start
	}
	out[num-1] = stop
	return out
}

// numpyArangeDown reproduces np.arange(start, 0, -step) in float64: numpy
// derives the increment from the first two values and fills start + i*delta.
func numpyArangeDown(start, step float64) []float64 {
	n := int(math.Ceil((0 - start) / -step))
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	out[0] = start
	delta := (start - step) - start
	for i := 1; i < n; i++ {
		out[i] = start + float64(float64(i)*delta)
	}
	return out
}

// trailingTimesteps is round(np.arange(N, 0, -N/n)) - 1, cut to n values.
// For some n (61, 103, ...) N/(N/n) rounds above n, numpy's arange yields
// a spurious extra value near 0, and diffusers would step at timestep -1
// (which torch indexes as the last table entry); dropping it is the only
// sensible reading.
func trailingTimesteps(N, n int) []int {
	ts := roundInts(numpyArangeDown(float64(N), float64(N)/float64(n)))
	if len(ts) > n {
		ts = ts[:n]
	}
	for i := range ts {
		ts[i]--
	}
	return ts
}

// roundInts applies numpy's round (half to even) and converts to ints.
func roundInts(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(math.RoundToEven(x))
	}
	return out
}

func reverseInts(v []int) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[len(v)-1-i] = x
	}
	return out
}

// spacedTimesteps is the descending timestep list of DDIM and DDPM (and,
// reversed, the base list of PNDM) for n inference steps.
func spacedTimesteps(c Config, spacing string, n int) ([]int, error) {
	N := c.NumTrainTimesteps
	var ts []int
	switch spacing {
	case "linspace":
		ts = reverseInts(roundInts(numpyLinspace(0, float64(N-1), n)))
	case "leading":
		ratio := N / n
		ts = make([]int, n)
		for i := range ts {
			ts[i] = (n-1-i)*ratio + c.StepsOffset
		}
	case "trailing":
		ts = trailingTimesteps(N, n)
	default:
		return nil, fmt.Errorf("scheduler: timestep_spacing %q (want leading, trailing or linspace)", spacing)
	}
	return ts, checkTimesteps(ts, N)
}

// checkTimesteps rejects lists that would index outside the tables, which
// diffusers would fail on with an IndexError (e.g. leading spacing with a
// steps_offset and n = num_train_timesteps).
func checkTimesteps(ts []int, numTrain int) error {
	if len(ts) == 0 {
		return fmt.Errorf("scheduler: no timesteps")
	}
	for _, t := range ts {
		if t < 0 || t >= numTrain {
			return fmt.Errorf("scheduler: timestep %d outside [0, %d); use fewer steps or another timestep_spacing", t, numTrain)
		}
	}
	return nil
}

func checkSteps(n, numTrain int) error {
	if n <= 0 || n > numTrain {
		return fmt.Errorf("scheduler: %d inference steps, want 1..%d", n, numTrain)
	}
	return nil
}
