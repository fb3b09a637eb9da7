#version 450
// concat: out[i, 0:ca+cb, j] = a[i, :, j] ++ b[i, :, j] for [n, c, inner]
// layouts; one thread per output element.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint total, ca, cb, inner; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint c = p.ca + p.cb;
    uint j = i % p.inner;
    uint ch = (i / p.inner) % c;
    uint n = i / (p.inner * c);
    o[i] = ch < p.ca ? a[(n * p.ca + ch) * p.inner + j] : b[(n * p.cb + ch - p.ca) * p.inner + j];
}
