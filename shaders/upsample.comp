#version 450
#include "storage.glsl"
// upsample: nearest-neighbour 2x of [n, c, h, w] -> [n, c, 2h, 2w].
#include "common.glsl"
layout(local_size_x = 256) in;
RBUF(0, x)
WBUF(1, o)
layout(push_constant) uniform P { uint total, h, w; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint w2 = 2 * p.w, h2 = 2 * p.h;
    uint ox = i % w2;
    uint oy = (i / w2) % h2;
    uint nc = i / (w2 * h2);
    o_st(i, x_ld((nc * p.h + oy / 2) * p.w + ox / 2));
}
