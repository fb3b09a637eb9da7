package ref

import "math"

// TimestepEmbedding is diffusers' get_timestep_embedding for timesteps t
// [n] -> [n,dim]: half = dim/2, freq_i = exp(-ln(maxPeriod)·i/(half -
// downscaleFreqShift)), arg = scale·t·freq, then [sin, cos] ([cos, sin] when
// flipSinToCos) and a zero column when dim is odd.
//
// Unlike the rest of the package this does NOT compute in float64: diffusers
// always builds these sinusoids in float32 (even for a float64 model), and
// with t near 1000 the float32 rounding of t·freq moves sin and cos by up to
// ~3e-5 (half an ulp of 1000), far above the tolerances downstream. So every step rounds to
// float32 exactly where torch's CPU kernels do: the arange times -ln(period)
// (the Python scalar is cast to float32), the division, exp, the product
// with t, and the product with scale. sin and cos are evaluated in float64 on
// the float32 argument and rounded once, which is within an ulp of torch's
// float32 kernels. exp is correctly rounded here while torch's vectorised
// float32 exp is 1-ulp accurate, so near a rounding tie a frequency can
// differ by one ulp (seen once in the sd-tiny fixture; the test allows
// t·ulp(freq)). It returns nil for a negative dim.
func TimestepEmbedding(t []float32, dim int, flipSinToCos bool, downscaleFreqShift, scale, maxPeriod float64) []float32 {
	if _, ok := outLen(len(t), dim); !ok {
		return nil
	}
	half := dim / 2
	negLog := float32(-math.Log(maxPeriod))
	den := float32(float64(half) - downscaleFreqShift)
	sc := float32(scale)
	freq := make([]float32, half)
	for i := range freq {
		e := float32(negLog*float32(i)) / den
		freq[i] = float32(math.Exp(float64(e)))
	}
	out := make([]float32, len(t)*dim)
	sinAt, cosAt := 0, half
	if flipSinToCos {
		sinAt, cosAt = half, 0
	}
	for r, tv := range t {
		row := out[r*dim : (r+1)*dim]
		for i, f := range freq {
			arg := float32(sc * float32(tv*f))
			row[sinAt+i] = float32(math.Sin(float64(arg)))
			row[cosAt+i] = float32(math.Cos(float64(arg)))
		}
	}
	return out
}

// FourierFeatures is NeTI's positional encoding of (timestep, layer) pairs:
// with W [numW,2] (columns already scaled by σ_t and σ_l), z = W·[t,l], the
// row is [sin z, cos z] (all sines first) divided by its L2 norm, giving
// [n, 2·numW] for n = len(t) = len(layer). Computed in float64: NeTI does
// this in float32, which differs by ~1e-7 (the fixtures' measured fp32
// error), far inside their tolerance.
func FourierFeatures(w []float32, numW int, t, layer []float32) []float32 {
	if !sized(w, numW, 2) || len(t) != len(layer) {
		return nil
	}
	if _, ok := outLen(len(t), 2, numW); !ok {
		return nil
	}
	out := make([]float32, len(t)*2*numW)
	e := make([]float64, 2*numW)
	for r := range t {
		tv, lv := float64(t[r]), float64(layer[r])
		for i := 0; i < numW; i++ {
			z := float64(w[2*i])*tv + float64(w[2*i+1])*lv
			e[i], e[numW+i] = math.Sin(z), math.Cos(z)
		}
		// ‖e‖ is √numW analytically, but NeTI divides by the computed norm,
		// so this does too.
		nrm := rowNorm(e)
		for i, v := range e {
			out[r*2*numW+i] = float32(v / nrm)
		}
	}
	return out
}

// Bypass is NeTI's textual bypass on rows of d values:
// h' = h + alpha·‖h‖·v/‖v‖ (NeTI uses alpha = 0.2, h the CLIP hidden state
// before the final LayerNorm and v the mapper's bypass half). Like NeTI, v is
// not guarded against a zero norm. h and v hold the same number of rows.
func Bypass(h, v []float32, d int, alpha float32) []float32 { return bypass(h, v, d, alpha) }

func bypassCheck[T float](h, v []T, d int) bool {
	return d > 0 && len(h)%d == 0 && len(v) == len(h)
}

func bypass[T float](h, v []T, d int, alpha float32) []T {
	if !bypassCheck(h, v, d) {
		return nil
	}
	out := make([]T, len(h))
	for r := 0; r < len(h)/d; r++ {
		hr, vr := h[r*d:(r+1)*d], v[r*d:(r+1)*d]
		f := float64(alpha) * rowNorm(hr) / rowNorm(vr)
		for i := range hr {
			out[r*d+i] = T(float64(hr[i]) + f*float64(vr[i]))
		}
	}
	return out
}

// BypassBackward returns dh and dv for Bypass's upstream gradient dy. The
// ‖h‖ factor is not detached in NeTI, so dh = dy + alpha·(u·dy)·h/‖h‖ with
// u = v/‖v‖ (zero extra term at h = 0, PyTorch's norm subgradient), and
// dv = alpha·‖h‖/‖v‖·(dy - (u·dy)·u).
func BypassBackward(h, v, dy []float32, d int, alpha float32) (dh, dv []float32) {
	return bypassBackward(h, v, dy, d, alpha)
}

func bypassBackward[T float](h, v, dy []T, d int, alpha float32) (dh, dv []T) {
	if !bypassCheck(h, v, d) || len(dy) != len(h) {
		return nil, nil
	}
	dh, dv = make([]T, len(h)), make([]T, len(v))
	a := float64(alpha)
	for r := 0; r < len(h)/d; r++ {
		hr, vr, g := h[r*d:(r+1)*d], v[r*d:(r+1)*d], dy[r*d:(r+1)*d]
		hn, vn := rowNorm(hr), rowNorm(vr)
		var ug float64 // u·dy
		for i := range vr {
			ug += float64(vr[i]) / vn * float64(g[i])
		}
		hTerm := 0.0
		if hn > 0 {
			hTerm = a * ug / hn
		}
		for i := range hr {
			dh[r*d+i] = T(float64(g[i]) + hTerm*float64(hr[i]))
			dv[r*d+i] = T(a * hn / vn * (float64(g[i]) - ug*float64(vr[i])/vn))
		}
	}
	return dh, dv
}
