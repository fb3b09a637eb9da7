#version 450
// fourier: NeTI's positional encoding. One workgroup per row: z_i =
// w[i,0]*t + w[i,1]*layer for i < numW, e = [sin z, cos z], out = e/||e||
// (the norm is sqrt(numW) up to rounding; it is computed, as NeTI does).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer T { float t[]; };
layout(std430, binding = 1) readonly buffer L { float l[]; };
layout(std430, binding = 2) readonly buffer W { float w[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint rows, numW; } p;
shared float part[256];

void main() {
    uint row = linearGroup();
    if (row >= p.rows) return;
    uint lid = gl_LocalInvocationID.x;
    float tv = t[row], lv = l[row];
    float s = 0.0;
    for (uint i = lid; i < p.numW; i += 256) {
        float z = reduce2pi(w[2 * i] * tv + w[2 * i + 1] * lv);
        float sv = sin(z), cv = cos(z);
        s += sv * sv + cv * cv;
    }
    part[lid] = s;
    barrier();
    for (uint k = 128; k > 0; k >>= 1) {
        if (lid < k) part[lid] += part[lid + k];
        barrier();
    }
    float inv = 1.0 / max(sqrt(part[0]), 1e-12);
    uint base = row * 2 * p.numW;
    for (uint i = lid; i < p.numW; i += 256) {
        float z = reduce2pi(w[2 * i] * tv + w[2 * i + 1] * lv);
        o[base + i] = sin(z) * inv;
        o[base + p.numW + i] = cos(z) * inv;
    }
}
