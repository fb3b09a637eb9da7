#version 450
// groupnorm: second half (see groupnorm_stats.comp). Each workgroup owns one
// chunk of one group: it merges the group's chunk statistics (at most 256,
// so this costs less than a separate dispatch would), then normalises its
// chunk with the channel's gamma/beta and the optional fused SiLU.
#include "common.glsl"
#include "groupnorm_stats.glsl"
layout(local_size_x = GN_WG) in;
layout(constant_id = 0) const bool SILU = false;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Gamma { float gamma[]; };
layout(std430, binding = 2) readonly buffer Beta { float beta[]; };
layout(std430, binding = 3) readonly buffer Part { float part[]; };
layout(std430, binding = 4) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P {
    uint gsize, chunk, nChunks, nWork;
    uint c;  // channels
    uint hw; // elements per channel plane
    float eps;
} p;

void main() {
    uint wg = linearGroup();
    if (wg >= p.nWork) return; // whole workgroup: the grid may overshoot
    uint grp = wg / p.nChunks, ck = wg % p.nChunks;
    uint t = gl_LocalInvocationID.x;

    float n = 0.0, mean = 0.0, m2 = 0.0;
    for (uint j = t; j < p.nChunks; j += GN_WG) {
        float nj = float(min(p.chunk, p.gsize - j * p.chunk));
        uint at = 2 * (grp * p.nChunks + j);
        merge(n, mean, m2, nj, part[at], part[at + 1]);
    }
    mergeGroup(n, mean, m2);
    // Biased variance, as torch.group_norm.
    float rstd = 1.0 / sqrt(m2 / n + p.eps);

    uint first = ck * p.chunk;
    uint cnt = min(p.chunk, p.gsize - first);
    uint base = grp * p.gsize + first;
    for (uint i = t; i < cnt; i += GN_WG) {
        uint idx = base + i;
        uint ch = (idx / p.hw) % p.c;
        float v = (x[idx] - mean) * rstd * gamma[ch] + beta[ch];
        if (SILU) v = v / (1.0 + exp(-v));
        y[idx] = v;
    }
}
