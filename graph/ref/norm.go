package ref

import "math"

// moments returns the mean and the biased variance (PyTorch's norms divide
// by N, not N-1) of x, in two passes for accuracy.
func moments[T float](x []T) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	return mean, variance / float64(len(x))
}

func affine[T float](gamma, beta []T, ch int) (g, b float64) {
	g = 1
	if gamma != nil {
		g = float64(gamma[ch])
	}
	if beta != nil {
		b = float64(beta[ch])
	}
	return g, b
}

func groupNormCheck[T float](x []T, n, c, hw, groups int, gamma, beta []T) bool {
	return groups > 0 && c%groups == 0 && sized(x, n, c, hw) && optSized(gamma, c) && optSized(beta, c)
}

// GroupNorm is PyTorch's nn.GroupNorm on x [n,c,hw]: per sample and group of
// c/groups channels, (x-mean)/sqrt(var+eps) with the biased variance, then the
// per-channel affine gamma, beta (nil means none). With silu, SiLU follows
// the affine, the fusion every diffusers ResnetBlock2D uses.
func GroupNorm(x []float32, n, c, hw, groups int, gamma, beta []float32, eps float32, silu bool) []float32 {
	return groupNorm(x, n, c, hw, groups, gamma, beta, eps, silu)
}

func groupNorm[T float](x []T, n, c, hw, groups int, gamma, beta []T, eps float32, silu bool) []T {
	if !groupNormCheck(x, n, c, hw, groups, gamma, beta) {
		return nil
	}
	y := make([]T, len(x))
	gsize := c / groups * hw // a group is contiguous in NCHW
	for b := 0; b < n; b++ {
		for gr := 0; gr < groups; gr++ {
			base := (b*groups + gr) * gsize
			mean, variance := moments(x[base : base+gsize])
			rstd := 1 / math.Sqrt(variance+float64(eps))
			for i := 0; i < gsize; i++ {
				g, bt := affine(gamma, beta, (base+i)/hw%c)
				a := (float64(x[base+i])-mean)*rstd*g + bt
				if silu {
					a *= sigmoid(a)
				}
				y[base+i] = T(a)
			}
		}
	}
	return y
}

// GroupNormBackward returns dx [n,c,hw], dgamma [c] and dbeta [c] for
// GroupNorm's upstream gradient dy (dgamma and dbeta are computed even when
// gamma or beta is nil, as if they were ones and zeros).
func GroupNormBackward(x, dy []float32, n, c, hw, groups int, gamma, beta []float32, eps float32, silu bool) (dx, dgamma, dbeta []float32) {
	return groupNormBackward(x, dy, n, c, hw, groups, gamma, beta, eps, silu)
}

func groupNormBackward[T float](x, dy []T, n, c, hw, groups int, gamma, beta []T, eps float32, silu bool) (dx, dgamma, dbeta []T) {
	if !groupNormCheck(x, n, c, hw, groups, gamma, beta) || len(dy) != len(x) {
		return nil, nil, nil
	}
	dX := make([]float64, len(x))
	dG := make([]float64, c)
	dB := make([]float64, c)
	gsize := c / groups * hw
	xhat := make([]float64, gsize)
	dxhat := make([]float64, gsize)
	for b := 0; b < n; b++ {
		for gr := 0; gr < groups; gr++ {
			base := (b*groups + gr) * gsize
			mean, variance := moments(x[base : base+gsize])
			rstd := 1 / math.Sqrt(variance+float64(eps))
			var sumD, sumDX float64
			for i := 0; i < gsize; i++ {
				ch := (base + i) / hw % c
				g, bt := affine(gamma, beta, ch)
				xhat[i] = (float64(x[base+i]) - mean) * rstd
				da := float64(dy[base+i])
				if silu {
					da *= siluGrad(xhat[i]*g + bt)
				}
				dB[ch] += da
				dG[ch] += da * xhat[i]
				dxhat[i] = da * g
				sumD += dxhat[i]
				sumDX += dxhat[i] * xhat[i]
			}
			normGrad(dX[base:base+gsize], xhat, dxhat, rstd, sumD, sumDX)
		}
	}
	return round[T](dX), round[T](dG), round[T](dB)
}

// normGrad is the standard normalisation backward over one group of M
// values: dx = rstd·(dxhat - mean(dxhat) - xhat·mean(dxhat·xhat)).
func normGrad(dx, xhat, dxhat []float64, rstd, sumD, sumDX float64) {
	m := float64(len(xhat))
	for i := range dx {
		dx[i] = rstd * (dxhat[i] - sumD/m - xhat[i]*sumDX/m)
	}
}

// LayerNorm is PyTorch's nn.LayerNorm over the last dimension of x [rows,d]
// (biased variance); gamma and beta may be nil (no affine).
func LayerNorm(x []float32, rows, d int, gamma, beta []float32, eps float32) []float32 {
	return layerNorm(x, rows, d, gamma, beta, eps)
}

func layerNorm[T float](x []T, rows, d int, gamma, beta []T, eps float32) []T {
	if !sized(x, rows, d) || !optSized(gamma, d) || !optSized(beta, d) {
		return nil
	}
	y := make([]T, len(x))
	for r := 0; r < rows; r++ {
		base := r * d
		mean, variance := moments(x[base : base+d])
		rstd := 1 / math.Sqrt(variance+float64(eps))
		for i := 0; i < d; i++ {
			g, b := affine(gamma, beta, i)
			y[base+i] = T((float64(x[base+i])-mean)*rstd*g + b)
		}
	}
	return y
}

// LayerNormBackward returns dx [rows,d], dgamma [d] and dbeta [d] for
// LayerNorm's upstream gradient dy (gamma nil means ones).
func LayerNormBackward(x, dy []float32, rows, d int, gamma []float32, eps float32) (dx, dgamma, dbeta []float32) {
	return layerNormBackward(x, dy, rows, d, gamma, eps)
}

func layerNormBackward[T float](x, dy []T, rows, d int, gamma []T, eps float32) (dx, dgamma, dbeta []T) {
	if !sized(x, rows, d) || len(dy) != len(x) || !optSized(gamma, d) {
		return nil, nil, nil
	}
	dX := make([]float64, len(x))
	dG := make([]float64, d)
	dB := make([]float64, d)
	xhat := make([]float64, d)
	dxhat := make([]float64, d)
	for r := 0; r < rows; r++ {
		base := r * d
		mean, variance := moments(x[base : base+d])
		rstd := 1 / math.Sqrt(variance+float64(eps))
		var sumD, sumDX float64
		for i := 0; i < d; i++ {
			g, _ := affine(gamma, nil, i)
			xhat[i] = (float64(x[base+i]) - mean) * rstd
			gy := float64(dy[base+i])
			dB[i] += gy
			dG[i] += gy * xhat[i]
			dxhat[i] = gy * g
			sumD += dxhat[i]
			sumDX += dxhat[i] * xhat[i]
		}
		normGrad(dX[base:base+d], xhat, dxhat, rstd, sumD, sumDX)
	}
	return round[T](dX), round[T](dG), round[T](dB)
}

// L2NormalizeScale maps each row of x [rows,d] to x/max(‖x‖,1e-12)·scale,
// F.normalize followed by the NeTI mapper's norm_scale.
func L2NormalizeScale(x []float32, rows, d int, scale float32) []float32 {
	return l2NormalizeScale(x, rows, d, scale)
}

// l2Eps is F.normalize's default eps.
const l2Eps = 1e-12

func rowNorm[T float](x []T) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}

func l2NormalizeScale[T float](x []T, rows, d int, scale float32) []T {
	if !sized(x, rows, d) {
		return nil
	}
	y := make([]T, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*d : (r+1)*d]
		f := float64(scale) / max(rowNorm(row), l2Eps)
		for i, v := range row {
			y[r*d+i] = T(float64(v) * f)
		}
	}
	return y
}

// L2NormalizeScaleBackward returns dx for L2NormalizeScale's upstream
// gradient dy. Where the norm is clamped at 1e-12 the map is linear, so the
// gradient is dy·scale/1e-12, as in PyTorch.
func L2NormalizeScaleBackward(x, dy []float32, rows, d int, scale float32) []float32 {
	return l2NormalizeScaleBackward(x, dy, rows, d, scale)
}

func l2NormalizeScaleBackward[T float](x, dy []T, rows, d int, scale float32) []T {
	if !sized(x, rows, d) || len(dy) != len(x) {
		return nil
	}
	dx := make([]T, len(x))
	for r := 0; r < rows; r++ {
		row, g := x[r*d:(r+1)*d], dy[r*d:(r+1)*d]
		nrm := rowNorm(row)
		if nrm <= l2Eps {
			for i, v := range g {
				dx[r*d+i] = T(float64(v) * float64(scale) / l2Eps)
			}
			continue
		}
		var dot float64
		for i, v := range row {
			dot += float64(v) * float64(g[i])
		}
		// d(x/‖x‖) = (I - x̂x̂ᵀ)/‖x‖
		for i, v := range row {
			dx[r*d+i] = T(float64(scale) / nrm * (float64(g[i]) - float64(v)*dot/(nrm*nrm)))
		}
	}
	return dx
}
