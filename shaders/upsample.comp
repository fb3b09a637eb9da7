#version 450
// upsample: nearest-neighbour 2x of [n, c, h, w] -> [n, c, 2h, 2w].
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint total, h, w; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint w2 = 2 * p.w, h2 = 2 * p.h;
    uint ox = i % w2;
    uint oy = (i / w2) % h2;
    uint nc = i / (w2 * h2);
    o[i] = x[(nc * p.h + oy / 2) * p.w + ox / 2];
}
