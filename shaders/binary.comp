#version 450
#include "storage.glsl"
// binary: out = a (op) b with numpy broadcasting up to rank 6. Broadcast
// dimensions have stride 0, so one index computation serves every case;
// when neither operand broadcasts (SAME) the index is used directly.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint OP = 0; // 0 add, 1 mul, 2 sub, 3 div
layout(constant_id = 1) const bool SAME = false;
RBUF(0, a)
RBUF(1, b)
WBUF(2, o)
layout(push_constant) uniform P {
    uint n;
    uint dims[6];    // output shape, right-aligned, leading 1s
    uint sa[6];      // element strides of a per output dim (0 = broadcast)
    uint sb[6];
} p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint ia = i, ib = i;
    if (!SAME) {
        uint rem = i;
        ia = 0;
        ib = 0;
        for (int d = 5; d >= 0; d--) {
            uint c = rem % p.dims[d];
            rem /= p.dims[d];
            ia += c * p.sa[d];
            ib += c * p.sb[d];
        }
    }
    float x = a_ld(ia), y = b_ld(ib);
    o_st(i, OP == 0 ? x + y : (OP == 1 ? x * y : (OP == 2 ? x - y : x / y)));
}
