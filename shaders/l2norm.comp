#version 450
// l2norm: per row of width d, either out = x / max(||x||, 1e-12) * scale
// (mode 0, NeTI's mapper output) or out = ||x|| (mode 1, one value per row,
// the |h| of the textual bypass). One workgroup per row, fp32 tree sum.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint rows, d; float scale; uint mode; } p;
shared float part[256];

void main() {
    uint row = linearGroup();
    if (row >= p.rows) return;
    uint lid = gl_LocalInvocationID.x;
    uint base = row * p.d;
    float s = 0.0;
    for (uint i = lid; i < p.d; i += 256) { float v = x[base + i]; s += v * v; }
    part[lid] = s;
    barrier();
    for (uint k = 128; k > 0; k >>= 1) {
        if (lid < k) part[lid] += part[lid + k];
        barrier();
    }
    float n = sqrt(part[0]);
    if (p.mode == 1u) {
        if (lid == 0) o[row] = n;
        return;
    }
    float f = p.scale / max(n, 1e-12);
    for (uint i = lid; i < p.d; i += 256) o[base + i] = x[base + i] * f;
}
