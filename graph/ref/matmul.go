package ref

// mmLayout holds the index arithmetic of one batched MatMul so the forward
// and backward passes cannot disagree about layouts.
type mmLayout struct {
	m, n, k        int
	transA, transB bool
	aBatch, bBatch int // elements per batch item (bBatch is 0 when b is broadcast)
}

func newMMLayout[T any](a, b []T, batch, m, n, k int, transA, transB, broadcastB bool) (mmLayout, bool) {
	l := mmLayout{m: m, n: n, k: k, transA: transA, transB: transB}
	bb := batch
	if broadcastB {
		bb = 1
	}
	if !sized(a, batch, m, k) || !sized(b, bb, k, n) {
		return l, false
	}
	if _, ok := outLen(batch, m, n); !ok {
		return l, false
	}
	l.aBatch = m * k
	if !broadcastB {
		l.bBatch = k * n
	}
	return l, true
}

// ai is the offset of op(A)[i,p] inside one batch item.
func (l mmLayout) ai(i, p int) int {
	if l.transA {
		return p*l.m + i
	}
	return i*l.k + p
}

// bi is the offset of op(B)[p,j] inside one batch item.
func (l mmLayout) bi(p, j int) int {
	if l.transB {
		return j*l.k + p
	}
	return p*l.n + j
}

// MatMul computes out[b] = op(a[b]) · op(b[b]) where op transposes when asked.
// a is [batch,m,k] ([batch,k,m] if transA); b is [batch,k,n] ([batch,n,k] if
// transB), with a batch dimension of 1 when broadcastB. out is [batch,m,n].
func MatMul(a, b []float32, batch, m, n, k int, transA, transB, broadcastB bool) []float32 {
	return matMul(a, b, batch, m, n, k, transA, transB, broadcastB)
}

func matMul[T float](a, b []T, batch, m, n, k int, transA, transB, broadcastB bool) []T {
	l, ok := newMMLayout(a, b, batch, m, n, k, transA, transB, broadcastB)
	if !ok {
		return nil
	}
	out := make([]T, batch*m*n)
	acc := make([]float64, n)
	arow := make([]float64, k)
	for bt := 0; bt < batch; bt++ {
		ab, bb := a[bt*l.aBatch:], b[bt*l.bBatch:]
		for i := 0; i < m; i++ {
			for p := range arow {
				arow[p] = float64(ab[l.ai(i, p)])
			}
			// Both branches walk b contiguously.
			if transB {
				for j := range acc {
					var s float64
					for p, bv := range bb[j*k : (j+1)*k] {
						s += arow[p] * float64(bv)
					}
					acc[j] = s
				}
			} else {
				clear(acc)
				for p, av := range arow {
					for j, bv := range bb[p*n : (p+1)*n] {
						acc[j] += av * float64(bv)
					}
				}
			}
			row := out[(bt*m+i)*n:]
			for j, v := range acc {
				row[j] = T(v)
			}
		}
	}
	return out
}

// MatMulBackward returns the gradients of MatMul's inputs for the upstream
// gradient dy [batch,m,n]. da has a's layout and db has b's layout; when
// broadcastB, db sums the contributions of every batch item.
func MatMulBackward(a, b, dy []float32, batch, m, n, k int, transA, transB, broadcastB bool) (da, db []float32) {
	return matMulBackward(a, b, dy, batch, m, n, k, transA, transB, broadcastB)
}

func matMulBackward[T float](a, b, dy []T, batch, m, n, k int, transA, transB, broadcastB bool) (da, db []T) {
	l, ok := newMMLayout(a, b, batch, m, n, k, transA, transB, broadcastB)
	if !ok || !sized(dy, batch, m, n) {
		return nil, nil
	}
	dA := make([]float64, len(a))
	dB := make([]float64, len(b))
	for bt := 0; bt < batch; bt++ {
		ab, bb := a[bt*l.aBatch:], b[bt*l.bBatch:]
		dAb, dBb := dA[bt*l.aBatch:], dB[bt*l.bBatch:]
		dyb := dy[bt*m*n:]
		for i := 0; i < m; i++ {
			for p := 0; p < k; p++ {
				av := float64(ab[l.ai(i, p)])
				var s float64
				for j := 0; j < n; j++ {
					g := float64(dyb[i*n+j])
					s += g * float64(bb[l.bi(p, j)])
					dBb[l.bi(p, j)] += av * g
				}
				dAb[l.ai(i, p)] = s
			}
		}
	}
	return round[T](dA), round[T](dB)
}

// Linear is PyTorch's nn.Linear: y = x·wᵀ + bias with x [rows,in], w
// [out,in] and y [rows,out]. bias may be nil.
func Linear(x []float32, rows, in int, w []float32, out int, bias []float32) []float32 {
	return linear(x, rows, in, w, out, bias)
}

func linear[T float](x []T, rows, in int, w []T, out int, bias []T) []T {
	if !sized(x, rows, in) || !sized(w, out, in) || !optSized(bias, out) {
		return nil
	}
	if _, ok := outLen(rows, out); !ok {
		return nil
	}
	y := make([]T, rows*out)
	for r := 0; r < rows; r++ {
		xr := x[r*in : (r+1)*in]
		for o := 0; o < out; o++ {
			wo := w[o*in : (o+1)*in]
			var s float64
			if bias != nil {
				s = float64(bias[o])
			}
			for i, xv := range xr {
				s += float64(xv) * float64(wo[i])
			}
			y[r*out+o] = T(s)
		}
	}
	return y
}

// LinearBackward returns dx [rows,in], dw [out,in] and dbias [out] for the
// upstream gradient dy [rows,out].
func LinearBackward(x []float32, rows, in int, w []float32, out int, dy []float32) (dx, dw, db []float32) {
	return linearBackward(x, rows, in, w, out, dy)
}

func linearBackward[T float](x []T, rows, in int, w []T, out int, dy []T) (dx, dw, db []T) {
	if !sized(x, rows, in) || !sized(w, out, in) || !sized(dy, rows, out) {
		return nil, nil, nil
	}
	dX := make([]float64, rows*in)
	dW := make([]float64, out*in)
	dB := make([]float64, out)
	for r := 0; r < rows; r++ {
		xr := x[r*in : (r+1)*in]
		dxr := dX[r*in : (r+1)*in]
		for o := 0; o < out; o++ {
			g := float64(dy[r*out+o])
			dB[o] += g
			wo := w[o*in : (o+1)*in]
			dwo := dW[o*in : (o+1)*in]
			for i := range xr {
				dxr[i] += g * float64(wo[i])
				dwo[i] += g * float64(xr[i])
			}
		}
	}
	return round[T](dX), round[T](dW), round[T](dB)
}
