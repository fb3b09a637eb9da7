#version 450
// slice: out[i, 0:len, j] = x[i, start:start+len, j] for [outer, axis, inner].
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint total, axis, inner, start, len; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint j = i % p.inner;
    uint a = (i / p.inner) % p.len;
    uint n = i / (p.inner * p.len);
    o[i] = x[(n * p.axis + p.start + a) * p.inner + j];
}
