package plugin

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// The compact form.
//
// Budget: an SD 1.x mapper has 563,616 values and must fit in 600 KB, so
// about 8.3 bits per value including everything else; plain fp16 (1.1 MB)
// is not enough. Measurements on synthetic full-size mappers (anchor input
// layer plus PyTorch-default init plus training-sized perturbations) showed
// where the output error comes from, per row-quantised matrix:
//
//   - net.1 / net.4 (the 128-wide hidden matrices, 6.5% of the values) are by
//     far the most sensitive per value: at 8 bits they alone cost ~0.7% of
//     output error, so they get a fine resolution (rms/512);
//   - output_layer.0 (35%) adds an error of about 1/(k·√12) of the output:
//     k = 94 gives ~0.3%;
//   - input_layer (58%) matters least per value; k = 24 costs ~0.3-0.5%.
//     It is stored as the difference from its anchor initialisation, which
//     is rebuilt exactly from W (AnchorInit), so a lightly trained layer
//     costs little.
//
// Biases, LayerNorm parameters and W stay float32 (W must be exact: it sets
// the phase of every feature). The quantised integers are DEFLATEd with the
// rest of the payload, which brings them near their entropy (about
// 2 + log2(k) bits each): about 580 KB for a typically trained SD 1.x
// mapper.
//
// The error is then measured, not assumed: Encode evaluates the full and
// the quantised mapper at every layer for NeTI's 50 inference timesteps and
// more (compactCheckTimesteps), and if the largest relative L2 error exceeds
// compactTarget it refines every resolution in proportion and tries again.
// compactTarget sits below the 1% promise (compactMaxErr) to leave room for
// timesteps between the checked ones.
const (
	compactKInput  = 24
	compactKHidden = 512
	compactKOutput = 94
	compactTarget  = 0.0075
	compactMaxErr  = 0.01
	compactTries   = 6
)

// compactCheckTimesteps are the timesteps Encode checks: NeTI's inference
// schedule plus the ends, anchor midpoints and the region below 20.
func compactCheckTimesteps() []float64 {
	ts := netiTimesteps()
	for _, t := range []int{0, 1, 5, 10, 50, 150, 250, 350, 450, 550, 650, 750, 850, 950, 990} {
		ts = append(ts, float64(t))
	}
	return ts
}

// netiTimesteps is NeTI's 50-step DPM-Solver schedule: round-half-even of
// linspace(0, 999, 51), reversed, without the final 0 (999, 979, ..., 20).
func netiTimesteps() []float64 {
	ts := make([]float64, 0, 50)
	for i := 50; i >= 1; i-- {
		ts = append(ts, math.RoundToEven(float64(999*i)/50))
	}
	return ts
}

// compactWire replaces the mapper matrices of w with quantised ones whose
// outputs were checked against c, and drops the optimizer state.
func compactWire(c *Concept, w *wireConcept) error {
	w.Optimizer = nil
	if c.Kind != KindNeTI {
		return nil // embedding vectors are tiny; they stay float32
	}
	anchor := AnchorInit(c.Fourier.W, c.Fourier.NumW, c.Arch.Anchors, c.Arch.Layers)
	grid := compactCheckTimesteps()
	ref := evalGrid(c, grid)
	scale := 1.0
	var worst float64
	for try := 0; try < compactTries; try++ {
		q, qc := quantizeMapper(c, anchor, scale)
		worst = maxRelErr(ref, evalGrid(qc, grid))
		if worst <= compactTarget {
			for i := range w.Tensors {
				if t, ok := q[w.Tensors[i].Name]; ok {
					w.Tensors[i] = t
				}
			}
			return nil
		}
		// The error is proportional to the step, so aim straight at the
		// target, with a little extra so one more try suffices.
		scale *= math.Max(1.1, worst/compactTarget*1.05)
	}
	return fmt.Errorf("quantised mapper still differs by %.3g%% (limit %.3g%%) after %d refinements; save it in full precision",
		100*worst, 100*compactTarget, compactTries)
}

// quantizeMapper returns the wire tensors of the quantised matrices and a
// copy of c holding exactly the values a reader will decode.
func quantizeMapper(c *Concept, anchor []float32, scale float64) (map[string]wireTensor, *Concept) {
	qc := *c
	qw := *c.Weights
	qc.Weights = &qw
	out := map[string]wireTensor{}
	for _, m := range []struct {
		name string
		t    *Tensor
		k    float64
		base []float32
	}{
		{"input_layer.weight", &qw.InputW, compactKInput, anchor},
		{"net.1.weight", &qw.Lin1W, compactKHidden, nil},
		{"net.4.weight", &qw.Lin2W, compactKHidden, nil},
		{"output_layer.0.weight", &qw.OutW, compactKOutput, nil},
	} {
		cols := m.t.Shape[1]
		steps, codes := quantizeRows(m.t.Data, m.base, cols, m.k*scale)
		wt := wireTensor{Name: m.name, Shape: append([]int(nil), m.t.Shape...), Enc: encQ16,
			Steps: float32Bytes(steps), Data: packPlanes(codes)}
		if m.base != nil {
			wt.Base = baseAnchor
		}
		out[m.name] = wt
		*m.t = Tensor{Shape: m.t.Shape, Data: dequantizeRows(steps, codes, m.base, cols)}
	}
	return out, &qc
}

// evalGrid evaluates the mapper (no truncation) at every layer for each
// timestep, spread over the CPUs; row i*Layers+l holds (ts[i], l).
func evalGrid(c *Concept, ts []float64) [][]float64 {
	layers := c.Arch.Layers
	out := make([][]float64, len(ts)*layers)
	workers := min(runtime.GOMAXPROCS(0), len(out))
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			s := newScratch(c)
			for i := wk; i < len(out); i += workers {
				_, o := c.forward(s, ts[i/layers], float64(i%layers), -1)
				out[i] = append([]float64(nil), o...)
			}
		}(wk)
	}
	wg.Wait()
	return out
}

// maxRelErr is the largest ||a_i - b_i|| / ||a_i|| over rows.
func maxRelErr(ref, got [][]float64) float64 {
	var worst float64
	for i := range ref {
		var num, den float64
		for j, r := range ref[i] {
			d := got[i][j] - r
			num += d * d
			den += r * r
		}
		e := math.Sqrt(num / math.Max(den, 1e-300))
		worst = math.Max(worst, e)
	}
	return worst
}
