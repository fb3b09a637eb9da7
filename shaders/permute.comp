#version 450
#include "storage.glsl"
// permute: a strided copy. The output is walked in order (coalesced
// writes); dims are the output shape and strides the input strides of each
// output dimension, right-aligned to rank 6.
#include "common.glsl"
layout(local_size_x = 256) in;
RBUF(0, x)
WBUF(1, o)
layout(push_constant) uniform P { uint total; uint dims[6]; uint strides[6]; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint rem = i, src = 0;
    for (int d = 5; d >= 0; d--) {
        uint c = rem % p.dims[d];
        rem /= p.dims[d];
        src += c * p.strides[d];
    }
    o_st(i, x_ld(src));
}
