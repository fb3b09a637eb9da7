package ref

import "math"

// softmaxRow writes the softmax of s into p, subtracting the maximum first
// as PyTorch does, so large logits do not overflow.
func softmaxRow(s, p []float64) {
	m := math.Inf(-1)
	for _, v := range s {
		m = max(m, v)
	}
	var z float64
	for i, v := range s {
		p[i] = math.Exp(v - m)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
}

// Softmax is softmax over the last dimension of x [rows,d].
func Softmax(x []float32, rows, d int) []float32 { return softmax(x, rows, d) }

func softmax[T float](x []T, rows, d int) []T {
	if !sized(x, rows, d) {
		return nil
	}
	y := make([]T, len(x))
	s := make([]float64, d)
	p := make([]float64, d)
	for r := 0; r < rows; r++ {
		for i := range s {
			s[i] = float64(x[r*d+i])
		}
		softmaxRow(s, p)
		for i, v := range p {
			y[r*d+i] = T(v)
		}
	}
	return y
}

// SoftmaxBackward returns dx = y·(dy - Σ y·dy) per row, given Softmax's
// output y [rows,d].
func SoftmaxBackward(y, dy []float32, rows, d int) []float32 {
	if !sized(y, rows, d) || len(dy) != len(y) {
		return nil
	}
	dx := make([]float32, len(y))
	for r := 0; r < rows; r++ {
		yr, gr := y[r*d:(r+1)*d], dy[r*d:(r+1)*d]
		var dot float64
		for i, v := range yr {
			dot += float64(v) * float64(gr[i])
		}
		for i, v := range yr {
			dx[r*d+i] = float32(float64(v) * (float64(gr[i]) - dot))
		}
	}
	return dx
}

// attnLayout is the index arithmetic of multi-head attention, shared by both
// directions.
type attnLayout struct {
	batch, nq, nk, heads, dHead, dHeadV int
	causal                              bool
	offset                              int // causal: query i sees keys j <= i+offset
}

func newAttnLayout[T any](q, k, v []T, batch, nq, nk, heads, dHead, dHeadV int, causal bool, offset int) (attnLayout, bool) {
	l := attnLayout{batch, nq, nk, heads, dHead, dHeadV, causal, offset}
	ok := offset >= 0 && (causal || offset == 0) &&
		sized(q, batch, nq, heads, dHead) && sized(k, batch, nk, heads, dHead) &&
		sized(v, batch, nk, heads, dHeadV)
	if _, o := outLen(batch, nq, heads, dHeadV); !o {
		ok = false
	}
	if _, o := outLen(batch, heads, nq, nk); !o { // the scores, never stored
		ok = false
	}
	return l, ok
}

func (l attnLayout) qi(b, i, h int) int { return (b*l.nq+i)*l.heads*l.dHead + h*l.dHead }
func (l attnLayout) ki(b, j, h int) int { return (b*l.nk+j)*l.heads*l.dHead + h*l.dHead }
func (l attnLayout) vi(b, j, h int) int { return (b*l.nk+j)*l.heads*l.dHeadV + h*l.dHeadV }
func (l attnLayout) oi(b, i, h int) int { return (b*l.nq+i)*l.heads*l.dHeadV + h*l.dHeadV }

// keys is how many keys query i sees: all of them, or j <= i+offset when
// causal (CLIP's mask fills the upper triangle with finfo.min, which
// softmax turns into exact zeros).
func (l attnLayout) keys(i int) int {
	if l.causal {
		return min(l.nk, i+l.offset+1)
	}
	return l.nk
}

// probs computes the attention probabilities of query (b,i) in head h.
func attnProbs[T float](l attnLayout, q, k []T, scale float64, b, i, h int, s, p []float64) {
	qr := q[l.qi(b, i, h):][:l.dHead]
	for j := range s {
		kr := k[l.ki(b, j, h):][:l.dHead]
		var dot float64
		for d, qv := range qr {
			dot += float64(qv) * float64(kr[d])
		}
		s[j] = dot * scale
	}
	softmaxRow(s, p)
}

// Attention is multi-head scaled dot-product attention without projections:
// q [batch,nq,heads·dHead], k [batch,nk,heads·dHead], v [batch,nk,heads·dHeadV]
// -> [batch,nq,heads·dHeadV]; head h uses columns h·dHead..(h+1)·dHead. Each
// query's output is Σ_j softmax_j(scale·q·k_j)·v_j; with causal, query i sees
// keys j <= i. A query with no keys gets zeros.
func Attention(q, k, v []float32, batch, nq, nk, heads, dHead, dHeadV int, scale float32, causal bool) []float32 {
	return attention(q, k, v, batch, nq, nk, heads, dHead, dHeadV, scale, causal, 0)
}

// CausalAttention is Attention whose queries are the last nq of nk = offset
// + nq causally masked positions: query i sees keys j <= offset+i. It lets
// a prompt's suffix attend to keys of a prefix computed once (offset 0 is
// Attention with causal set). Sizes that do not fit give nil.
func CausalAttention(q, k, v []float32, batch, nq, nk, heads, dHead, dHeadV int, scale float32, offset int) []float32 {
	if nk != nq+offset {
		return nil
	}
	return attention(q, k, v, batch, nq, nk, heads, dHead, dHeadV, scale, true, offset)
}

func attention[T float](q, k, v []T, batch, nq, nk, heads, dHead, dHeadV int, scale float32, causal bool, offset int) []T {
	l, ok := newAttnLayout(q, k, v, batch, nq, nk, heads, dHead, dHeadV, causal, offset)
	if !ok {
		return nil
	}
	out := make([]T, batch*nq*heads*dHeadV)
	s := make([]float64, nk)
	p := make([]float64, nk)
	acc := make([]float64, dHeadV)
	for b := 0; b < batch; b++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < nq; i++ {
				n := l.keys(i)
				attnProbs(l, q, k, float64(scale), b, i, h, s[:n], p[:n])
				clear(acc)
				for j, pj := range p[:n] {
					vr := v[l.vi(b, j, h):][:dHeadV]
					for d, vv := range vr {
						acc[d] += pj * float64(vv)
					}
				}
				o := out[l.oi(b, i, h):]
				for d, a := range acc {
					o[d] = T(a)
				}
			}
		}
	}
	return out
}

// AttentionBackward returns dq, dk and dv (shaped like q, k and v) for
// Attention's upstream gradient dout [batch,nq,heads·dHeadV]. It recomputes
// the probabilities P and uses dV = Pᵀ·dO, dS = P∘(dO·Vᵀ - rowsum(P∘dO·Vᵀ)),
// dQ = scale·dS·K, dK = scale·dSᵀ·Q.
func AttentionBackward(q, k, v, dout []float32, batch, nq, nk, heads, dHead, dHeadV int, scale float32, causal bool) (dq, dk, dv []float32) {
	return attentionBackward(q, k, v, dout, batch, nq, nk, heads, dHead, dHeadV, scale, causal, 0)
}

// CausalAttentionBackward is AttentionBackward for CausalAttention.
func CausalAttentionBackward(q, k, v, dout []float32, batch, nq, nk, heads, dHead, dHeadV int, scale float32, offset int) (dq, dk, dv []float32) {
	if nk != nq+offset {
		return nil, nil, nil
	}
	return attentionBackward(q, k, v, dout, batch, nq, nk, heads, dHead, dHeadV, scale, true, offset)
}

func attentionBackward[T float](q, k, v, dout []T, batch, nq, nk, heads, dHead, dHeadV int, scale float32, causal bool, offset int) (dq, dk, dv []T) {
	l, ok := newAttnLayout(q, k, v, batch, nq, nk, heads, dHead, dHeadV, causal, offset)
	if !ok || !sized(dout, batch, nq, heads, dHeadV) {
		return nil, nil, nil
	}
	dQ := make([]float64, len(q))
	dK := make([]float64, len(k))
	dV := make([]float64, len(v))
	s := make([]float64, nk)
	p := make([]float64, nk)
	dp := make([]float64, nk)
	sc := float64(scale)
	for b := 0; b < batch; b++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < nq; i++ {
				n := l.keys(i)
				attnProbs(l, q, k, sc, b, i, h, s[:n], p[:n])
				g := dout[l.oi(b, i, h):][:dHeadV]
				var rowDot float64
				for j := 0; j < n; j++ {
					vr := v[l.vi(b, j, h):][:dHeadV]
					dvr := dV[l.vi(b, j, h):][:dHeadV]
					var dot float64
					for d, gv := range g {
						dot += float64(gv) * float64(vr[d])
						dvr[d] += p[j] * float64(gv)
					}
					dp[j] = dot
					rowDot += p[j] * dot
				}
				qr := q[l.qi(b, i, h):][:dHead]
				dqr := dQ[l.qi(b, i, h):][:dHead]
				for j := 0; j < n; j++ {
					ds := p[j] * (dp[j] - rowDot) * sc
					kr := k[l.ki(b, j, h):][:dHead]
					dkr := dK[l.ki(b, j, h):][:dHead]
					for d := range dqr {
						dqr[d] += ds * float64(kr[d])
						dkr[d] += ds * float64(qr[d])
					}
				}
			}
		}
	}
	return round[T](dQ), round[T](dK), round[T](dV)
}
