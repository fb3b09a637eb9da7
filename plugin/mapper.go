package plugin

import "math"

// Mapper evaluates the NeTI mapper on the CPU at timestep t (the raw DDPM
// value, 0..999) and cross-attention layer index layer (0..Layers-1), in
// float64. truncation k zeroes hidden units k.. before the output layer
// (nested-dropout truncation); k < 0 or k >= Hidden means none.
//
// The output is normalised over the full vector (token and bypass halves
// together) and multiplied by NormScale, then split: token replaces the
// trigger's input embedding, bypass is the textual-bypass direction (nil when
// the concept has no bypass output). It returns nil, nil for a concept that
// is not a well-formed mapper concept.
func (c *Concept) Mapper(t, layer float64, truncation int) (token, bypass []float32) {
	if c.checkStructure() != nil {
		return nil, nil
	}
	_, out := c.forward(newScratch(c), t, layer, truncation)
	d := c.Arch.TextWidth
	token = make([]float32, d)
	for i := range token {
		token[i] = float32(out[i])
	}
	if c.Arch.OutputBypass {
		bypass = make([]float32, d)
		for i := range bypass {
			bypass[i] = float32(out[d+i])
		}
	}
	return token, bypass
}

// scratch holds the activations of one mapper evaluation so that error
// checks over hundreds of (t, layer) pairs do not allocate per call.
type scratch struct {
	pe, h0, h1, h2, out []float64
}

func newScratch(c *Concept) *scratch {
	a := c.Arch
	return &scratch{
		pe:  make([]float64, 2*c.Fourier.NumW),
		h0:  make([]float64, a.InputWidth),
		h1:  make([]float64, a.Hidden),
		h2:  make([]float64, a.Hidden),
		out: make([]float64, a.OutputWidth()),
	}
}

// forward runs the mapper; it returns the last hidden vector (after
// truncation) and the normalised output, both aliasing s. The caller has
// checked the structure.
func (c *Concept) forward(s *scratch, t, layer float64, truncation int) (hidden, out []float64) {
	w := c.Weights
	a := c.Arch
	encode(s.pe, c.Fourier.W, c.Fourier.NumW, t, layer)
	linear(s.h0, w.InputW.Data, w.InputB.Data, s.pe)
	linear(s.h1, w.Lin1W.Data, w.Lin1B.Data, s.h0)
	layerNormLeaky(s.h1, w.LN1W.Data, w.LN1B.Data, a.LNEps, a.LeakySlope)
	linear(s.h2, w.Lin2W.Data, w.Lin2B.Data, s.h1)
	layerNormLeaky(s.h2, w.LN2W.Data, w.LN2B.Data, a.LNEps, a.LeakySlope)
	if truncation >= 0 && truncation < a.Hidden {
		for i := truncation; i < a.Hidden; i++ {
			s.h2[i] = 0
		}
	}
	linear(s.out, w.OutW.Data, w.OutB.Data, s.h2)
	if c.NormScale > 0 {
		var ss float64
		for _, v := range s.out {
			ss += v * v
		}
		// F.normalize divides by max(norm, 1e-12).
		k := c.NormScale / math.Max(math.Sqrt(ss), 1e-12)
		for i := range s.out {
			s.out[i] *= k
		}
	}
	return s.h2, s.out
}

// encode writes the L2-normalised random Fourier features of (t, layer):
// [sin(W x), cos(W x)] with x = (t, layer), all sines first.
func encode(dst []float64, w []float32, numW int, t, layer float64) {
	var ss float64
	for i := 0; i < numW; i++ {
		z := float64(w[2*i])*t + float64(w[2*i+1])*layer
		s, c := math.Sincos(z)
		dst[i], dst[numW+i] = s, c
		ss += s*s + c*c
	}
	// sin²+cos² = 1, so the norm is sqrt(numW); dividing by the computed
	// norm keeps the reference's rounding behaviour.
	inv := 1 / math.Sqrt(ss)
	for i := range dst[:2*numW] {
		dst[i] *= inv
	}
}

// linear computes dst = W x + b for a row-major W of len(dst) rows.
func linear(dst []float64, wt, b []float32, x []float64) {
	n := len(x)
	for r := range dst {
		row := wt[r*n : (r+1)*n]
		// Four independent sums hide the floating-point add latency; the
		// compact-form check runs thousands of these rows per save.
		var a0, a1, a2, a3 float64
		j := 0
		for ; j+4 <= n; j += 4 {
			rr, xx := row[j:j+4:j+4], x[j:j+4:j+4]
			a0 += float64(rr[0]) * xx[0]
			a1 += float64(rr[1]) * xx[1]
			a2 += float64(rr[2]) * xx[2]
			a3 += float64(rr[3]) * xx[3]
		}
		for ; j < n; j++ {
			a0 += float64(row[j]) * x[j]
		}
		dst[r] = (a0 + a1) + (a2 + a3) + float64(b[r])
	}
}

// layerNormLeaky applies LayerNorm (biased variance, affine) then LeakyReLU
// in place.
func layerNormLeaky(x []float64, g, b []float32, eps, slope float64) {
	n := float64(len(x))
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= n
	var vr float64
	for _, v := range x {
		vr += (v - mean) * (v - mean)
	}
	vr /= n
	inv := 1 / math.Sqrt(vr+eps)
	for i, v := range x {
		y := (v-mean)*inv*float64(g[i]) + float64(b[i])
		if y < 0 {
			y *= slope
		}
		x[i] = y
	}
}

// AnchorInit returns NeTI's initial input-layer weight, [anchors*layers,
// 2*numW] row-major: row ti*layers+l is the normalised encoding of
// (ti*(1000/anchors), l), time being the outer loop (neti.md §1.3). w is the
// [numW, 2] Fourier matrix with scaled columns. It returns nil when w is too
// short or a count is not positive.
func AnchorInit(w []float32, numW, anchors, layers int) []float32 {
	if numW < 1 || anchors < 1 || layers < 1 || len(w) < 2*numW ||
		numW > maxNumW || anchors > maxAnchors || layers > maxLayers ||
		anchors*layers*2*numW > maxTensorElems {
		return nil
	}
	step := 1000 / anchors
	out := make([]float32, anchors*layers*2*numW)
	pe := make([]float64, 2*numW)
	for ti := 0; ti < anchors; ti++ {
		for l := 0; l < layers; l++ {
			encode(pe, w, numW, float64(ti*step), float64(l))
			row := out[(ti*layers+l)*2*numW:]
			for j, v := range pe {
				row[j] = float32(v)
			}
		}
	}
	return out
}
