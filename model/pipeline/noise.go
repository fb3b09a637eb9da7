package pipeline

import "math"

// Generator reproduces torch's CPU random generator
// (torch.Generator().manual_seed(seed)): a 32-bit Mersenne Twister and
// torch's normal sampling, so that a seed gives the same initial latents
// as diffusers on the CPU, which is how users compare implementations.
//
// torch.randn takes two paths: tensors of 16 or more float32 values draw
// all their uniforms first and transform them 16 at a time (Box-Muller
// over pairs 8 apart); smaller tensors draw normals one at a time in double
// precision, caching the second Box-Muller value. Randn follows both.
// Where torch's CPU build uses its AVX2 code, its log/sin/cos differ from
// the C library's in the last bits, so values agree to float32 rounding
// (about 1e-7), not always bit for bit.
type Generator struct {
	mt         [624]uint32
	i          int
	nextNormal float64 // cached double normal (scalar path)
	haveNext   bool
}

// NewGenerator is torch.Generator().manual_seed(seed).
func NewGenerator(seed uint64) *Generator {
	g := &Generator{}
	g.mt[0] = uint32(seed)
	for j := 1; j < len(g.mt); j++ {
		g.mt[j] = 1812433253*(g.mt[j-1]^(g.mt[j-1]>>30)) + uint32(j)
	}
	g.i = len(g.mt)
	return g
}

func (g *Generator) next() uint32 {
	const n, m = 624, 397
	if g.i >= n {
		for k := 0; k < n; k++ {
			y := g.mt[k]&0x80000000 | g.mt[(k+1)%n]&0x7fffffff
			v := g.mt[(k+m)%n] ^ y>>1
			if y&1 != 0 {
				v ^= 0x9908b0df
			}
			g.mt[k] = v
		}
		g.i = 0
	}
	y := g.mt[g.i]
	g.i++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// uniform32 is torch's uniform_real_distribution<float>(0, 1): 24 random
// bits of one draw.
func (g *Generator) uniform32() float32 {
	return float32(g.next()&(1<<24-1)) * (1.0 / (1 << 24))
}

// uniform64 is uniform_real_distribution<double>(0, 1): 53 bits of a
// 64-bit value made of two draws, the first one high.
func (g *Generator) uniform64() float64 {
	hi := uint64(g.next())
	lo := uint64(g.next())
	return float64((hi<<32|lo)&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal64 is at::normal_distribution<double>(0, 1).
func (g *Generator) normal64() float64 {
	if g.haveNext {
		g.haveNext = false
		return g.nextNormal
	}
	u1 := g.uniform64()
	u2 := g.uniform64()
	r := math.Sqrt(-2 * math.Log1p(-u2))
	theta := 2 * math.Pi * u1
	g.nextNormal, g.haveNext = r*math.Sin(theta), true
	return r * math.Cos(theta)
}

// Randn is torch.randn(n, generator=g) as float32 values.
func (g *Generator) Randn(n int) []float32 {
	out := make([]float32, n)
	if n < 16 {
		for i := range out {
			out[i] = float32(g.normal64())
		}
		return out
	}
	for i := range out {
		out[i] = g.uniform32()
	}
	for i := 0; i+16 <= n; i += 16 {
		boxMuller16(out[i : i+16])
	}
	if n%16 != 0 {
		// torch redraws the last 16 values (overlapping the previous
		// block) rather than handling a partial block.
		tail := out[n-16:]
		for i := range tail {
			tail[i] = g.uniform32()
		}
		boxMuller16(tail)
	}
	return out
}

// boxMuller16 turns 16 uniforms into 16 normals in place, in float32 as
// torch's normal_fill_16 does.
func boxMuller16(d []float32) {
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		r := float32(math.Sqrt(float64(-2 * float32(math.Log(float64(u1))))))
		theta := float32(2 * math.Pi * float64(u2))
		d[j] = r * float32(math.Cos(float64(theta)))
		d[j+8] = r * float32(math.Sin(float64(theta)))
	}
}

// Normal returns a source of standard normal values for the ancestral
// samplers, drawing them n at a time with Randn: diffusers draws one
// latent-shaped randn per step from the same generator, and a sampler
// asks for exactly n values per step.
func (g *Generator) Normal(n int) func() float64 {
	var buf []float32
	return func() float64 {
		if len(buf) == 0 {
			buf = g.Randn(n)
		}
		v := buf[0]
		buf = buf[1:]
		return float64(v)
	}
}
