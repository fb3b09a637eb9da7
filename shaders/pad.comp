#version 450
#include "storage.glsl"
// pad: out[i, a, j] = x[i, a - start, j] for start <= a < start+len, else
// 0, for [outer, axis, inner] outputs (the backward of slice).
#include "common.glsl"
layout(local_size_x = 256) in;
RBUF(0, x)
WBUF(1, o)
layout(push_constant) uniform P { uint total, axis, inner, start, len; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint j = i % p.inner;
    uint a = (i / p.inner) % p.axis;
    uint n = i / (p.inner * p.axis);
    o_st(i, (a >= p.start && a < p.start + p.len) ? x_ld((n * p.len + a - p.start) * p.inner + j) : 0.0);
}
