#version 450
#include "storage.glsl"
// concat: out[i, 0:ca+cb, j] = a[i, :, j] ++ b[i, :, j] for [n, c, inner]
// layouts; one thread per output element.
#include "common.glsl"
layout(local_size_x = 256) in;
RBUF(0, a)
RBUF(1, b)
WBUF(2, o)
layout(push_constant) uniform P { uint total, ca, cb, inner; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint c = p.ca + p.cb;
    uint j = i % p.inner;
    uint ch = (i / p.inner) % c;
    uint n = i / (p.inner * c);
    o_st(i, ch < p.ca ? a_ld((n * p.ca + ch) * p.inner + j) : b_ld((n * p.cb + ch - p.ca) * p.inner + j));
}
