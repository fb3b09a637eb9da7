#version 450
#include "storage.glsl"
// slice: out[i, 0:len, j] = x[i, start:start+len, j] for [outer, axis, inner].
#include "common.glsl"
layout(local_size_x = 256) in;
RBUF(0, x)
WBUF(1, o)
layout(push_constant) uniform P { uint total, axis, inner, start, len; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint j = i % p.inner;
    uint a = (i / p.inner) % p.len;
    uint n = i / (p.inner * p.len);
    o_st(i, x_ld((n * p.axis + p.start + a) * p.inner + j));
}
