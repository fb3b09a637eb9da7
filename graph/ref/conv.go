package ref

// Conv2dParams are the stride and the zero padding of a 2-D convolution. The
// four pads are separate because the VAE encoder's downsample pads only the
// bottom and right (0,1,0,1) before a stride-2 convolution.
type Conv2dParams struct{ StrideH, StrideW, PadTop, PadLeft, PadBottom, PadRight int }

// outSize is PyTorch's floor((in + pads - k)/stride) + 1, or false when the
// parameters are invalid or the kernel does not fit the padded input.
func (p Conv2dParams) outSize(h, w, kh, kw int) (ho, wo int, ok bool) {
	if p.StrideH < 1 || p.StrideW < 1 || p.PadTop < 0 || p.PadLeft < 0 || p.PadBottom < 0 || p.PadRight < 0 {
		return 0, 0, false
	}
	if kh < 1 || kw < 1 || h < 0 || w < 0 {
		return 0, 0, false
	}
	ph, pw := h+p.PadTop+p.PadBottom, w+p.PadLeft+p.PadRight
	if ph < kh || pw < kw || ph < h || pw < w { // ph < h catches overflow
		return 0, 0, false
	}
	return (ph-kh)/p.StrideH + 1, (pw-kw)/p.StrideW + 1, true
}

// convGeom is what the forward and the backward pass share: the output size
// and, per kernel column, the output columns whose input column is inside
// the image (so the inner loops need no bounds tests).
type convGeom struct {
	ho, wo     int
	oxLo, oxHi []int // per kx: valid ox in [oxLo, oxHi)
}

func newConvGeom(w, kw int, p Conv2dParams, ho, wo int) convGeom {
	g := convGeom{ho: ho, wo: wo, oxLo: make([]int, kw), oxHi: make([]int, kw)}
	for kx := 0; kx < kw; kx++ {
		lo, hi := wo, 0
		for ox := 0; ox < wo; ox++ {
			if ix := ox*p.StrideW - p.PadLeft + kx; ix >= 0 && ix < w {
				lo, hi = min(lo, ox), ox+1
			}
		}
		g.oxLo[kx], g.oxHi[kx] = lo, max(hi, lo)
	}
	return g
}

// convCheck validates the sizes shared by both directions and returns the
// output size.
func convCheck[T any](n, c, h, w int, wt []T, o, kh, kw int, p Conv2dParams) (ho, wo int, ok bool) {
	ho, wo, ok = p.outSize(h, w, kh, kw)
	if !ok || !sized(wt, o, c, kh, kw) {
		return 0, 0, false
	}
	if _, ok := outLen(n, o, ho, wo); !ok {
		return 0, 0, false
	}
	if _, ok := outLen(ho, wo); !ok { // sized even when n·o is 0
		return 0, 0, false
	}
	if _, ok := outLen(n, c, h, w); !ok {
		return 0, 0, false
	}
	return ho, wo, true
}

// Conv2d is PyTorch's F.conv2d with zero padding (dilation 1, groups 1):
// x [n,c,h,w], wt [o,c,kh,kw], bias [o] or nil -> y [n,o,ho,wo].
func Conv2d(x []float32, n, c, h, w int, wt []float32, o, kh, kw int, bias []float32, p Conv2dParams) (y []float32, ho, wo int) {
	return conv2d(x, n, c, h, w, wt, o, kh, kw, bias, p)
}

func conv2d[T float](x []T, n, c, h, w int, wt []T, o, kh, kw int, bias []T, p Conv2dParams) ([]T, int, int) {
	ho, wo, ok := convCheck(n, c, h, w, wt, o, kh, kw, p)
	if !ok || !sized(x, n, c, h, w) || !optSized(bias, o) {
		return nil, 0, 0
	}
	g := newConvGeom(w, kw, p, ho, wo)
	y := make([]T, n*o*ho*wo)
	acc := make([]float64, ho*wo)
	for b := 0; b < n; b++ {
		for oc := 0; oc < o; oc++ {
			var b0 float64
			if bias != nil {
				b0 = float64(bias[oc])
			}
			for i := range acc {
				acc[i] = b0
			}
			for ic := 0; ic < c; ic++ {
				plane := x[(b*c+ic)*h*w:]
				for ky := 0; ky < kh; ky++ {
					for kx := 0; kx < kw; kx++ {
						wv := float64(wt[((oc*c+ic)*kh+ky)*kw+kx])
						for oy := 0; oy < ho; oy++ {
							iy := oy*p.StrideH - p.PadTop + ky
							if iy < 0 || iy >= h {
								continue
							}
							lo, hi := g.oxLo[kx], g.oxHi[kx]
							if lo >= hi {
								continue
							}
							row, arow := plane[iy*w:], acc[oy*wo+lo:oy*wo+hi]
							if p.StrideW == 1 { // the common case: contiguous, bounds-check free
								src := row[lo-p.PadLeft+kx:][:len(arow)]
								for i, v := range src {
									arow[i] += wv * float64(v)
								}
								continue
							}
							for i := range arow {
								arow[i] += wv * float64(row[(lo+i)*p.StrideW-p.PadLeft+kx])
							}
						}
					}
				}
			}
			dst := y[(b*o+oc)*ho*wo:]
			for i, v := range acc {
				dst[i] = T(v)
			}
		}
	}
	return y, ho, wo
}

// Conv2dBackwardInput returns dx [n,c,h,w] for Conv2d's upstream gradient dy
// [n,o,ho,wo] (the transposed convolution). Input pixels that no window
// covers (possible with stride > 1) get zero.
func Conv2dBackwardInput(dy []float32, n, c, h, w int, wt []float32, o, kh, kw int, p Conv2dParams) []float32 {
	return conv2dBackwardInput(dy, n, c, h, w, wt, o, kh, kw, p)
}

func conv2dBackwardInput[T float](dy []T, n, c, h, w int, wt []T, o, kh, kw int, p Conv2dParams) []T {
	ho, wo, ok := convCheck(n, c, h, w, wt, o, kh, kw, p)
	if !ok || !sized(dy, n, o, ho, wo) {
		return nil
	}
	g := newConvGeom(w, kw, p, ho, wo)
	dx := make([]float64, n*c*h*w)
	for b := 0; b < n; b++ {
		for ic := 0; ic < c; ic++ {
			plane := dx[(b*c+ic)*h*w:]
			for oc := 0; oc < o; oc++ {
				dplane := dy[(b*o+oc)*ho*wo:]
				for ky := 0; ky < kh; ky++ {
					for kx := 0; kx < kw; kx++ {
						wv := float64(wt[((oc*c+ic)*kh+ky)*kw+kx])
						for oy := 0; oy < ho; oy++ {
							iy := oy*p.StrideH - p.PadTop + ky
							if iy < 0 || iy >= h {
								continue
							}
							lo, hi := g.oxLo[kx], g.oxHi[kx]
							if lo >= hi {
								continue
							}
							row, drow := plane[iy*w:], dplane[oy*wo+lo:oy*wo+hi]
							for i, v := range drow {
								row[(lo+i)*p.StrideW-p.PadLeft+kx] += wv * float64(v)
							}
						}
					}
				}
			}
		}
	}
	return round[T](dx)
}

// Upsample2x is nearest-neighbour upsampling by 2 (F.interpolate
// scale_factor=2, mode="nearest"): [n,c,h,w] -> [n,c,2h,2w].
func Upsample2x(x []float32, n, c, h, w int) []float32 { return upsample2x(x, n, c, h, w) }

func upsample2x[T float](x []T, n, c, h, w int) []T {
	if !sized(x, n, c, h, w) {
		return nil
	}
	if _, ok := outLen(n, c, 2, h, 2, w); !ok {
		return nil
	}
	w2 := 2 * w
	y := make([]T, 4*len(x))
	for pl := 0; pl < n*c; pl++ {
		src, dst := x[pl*h*w:], y[pl*4*h*w:]
		for iy := 0; iy < 2*h; iy++ {
			for ix := 0; ix < w2; ix++ {
				dst[iy*w2+ix] = src[(iy/2)*w+ix/2]
			}
		}
	}
	return y
}

// Upsample2xBackward sums each 2x2 block of dy [n,c,2h,2w] into dx [n,c,h,w].
func Upsample2xBackward(dy []float32, n, c, h, w int) []float32 {
	return upsample2xBackward(dy, n, c, h, w)
}

func upsample2xBackward[T float](dy []T, n, c, h, w int) []T {
	if !sized(dy, n, c, 2, h, 2, w) {
		return nil
	}
	w2 := 2 * w
	dx := make([]float64, n*c*h*w)
	for pl := 0; pl < n*c; pl++ {
		src, dst := dy[pl*4*h*w:], dx[pl*h*w:]
		for iy := 0; iy < 2*h; iy++ {
			for ix := 0; ix < w2; ix++ {
				dst[(iy/2)*w+ix/2] += float64(src[iy*w2+ix])
			}
		}
	}
	return round[T](dx)
}

// Concat joins [n,ca,inner] and [n,cb,inner] along axis 1 (the UNet's skip
// connections concatenate channels).
func Concat(a, b []float32, n, ca, cb, inner int) []float32 {
	if !sized(a, n, ca, inner) || !sized(b, n, cb, inner) {
		return nil
	}
	if _, ok := outLen(n, ca+cb, inner); !ok || ca+cb < ca {
		return nil
	}
	sa, sb := ca*inner, cb*inner
	out := make([]float32, 0, len(a)+len(b))
	for i := 0; i < n; i++ {
		out = append(out, a[i*sa:(i+1)*sa]...)
		out = append(out, b[i*sb:(i+1)*sb]...)
	}
	return out
}
