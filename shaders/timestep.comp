#version 450
#include "storage.glsl"
// timestep: diffusers' sinusoidal timestep embedding. freq_i =
// exp(-ln(10000) * i / (half - shift)) in fp32 like torch, arg = t * freq_i,
// out = [sin, cos] or [cos, sin] (flip_sin_to_cos), zero pad for odd dim.
// The argument reaches ~1000 rad: sin/cos get an explicit range reduction
// (reduce2pi in common.glsl) because drivers' sin() loses accuracy there.
#include "common.glsl"
layout(local_size_x = 256) in;
// t is never float16 (timestepOp.halfIn): fractional timesteps near 1000
// would round to a multiple of 0.5 there. Only the embedding may be.
RBUF(0, t)
WBUF(1, o)
layout(push_constant) uniform P { uint total, dim, flip; float shift; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint half_ = p.dim / 2;
    uint r = i / p.dim, c = i % p.dim;
    if (c >= 2 * half_) { o_st(i, 0.0); return; }
    uint k = c < half_ ? c : c - half_;
    float expo = -9.210340371976184 * float(k);   // -ln(10000) * k (fp32, as torch: arange * -ln)
    expo = expo / (float(half_) - p.shift);
    float arg = t_ld(r) * exp(expo);
    float a = reduce2pi(arg);
    bool first = c < half_;
    bool useSin = (p.flip != 0u) ? !first : first;
    o_st(i, useSin ? sin(a) : cos(a));
}
