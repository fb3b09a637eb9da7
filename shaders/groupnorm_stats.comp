#version 450
#include "storage.glsl"
// groupnorm_stats: first half of groupnorm. A group of channels is
// contiguous in NCHW and can hold millions of elements (VAE at 512x512), so
// it is split into chunks and each workgroup reduces one chunk to its mean
// and M2: Welford per invocation, then Chan's merge across the workgroup.
// groupnorm.comp merges the chunks of a group the same way.
#include "common.glsl"
#include "groupnorm_stats.glsl"
layout(local_size_x = GN_WG) in;
RBUF(0, x)
WBUF(1, part) // [nWork][2]: mean, M2 (program scratch, not a graph tensor, so always fp32)
layout(push_constant) uniform P {
    uint gsize;   // elements per group
    uint chunk;   // elements per chunk (the last chunk of a group may be short)
    uint nChunks; // chunks per group
    uint nWork;   // groups * nChunks over the whole batch
} p;

void main() {
    uint wg = linearGroup();
    if (wg >= p.nWork) return; // whole workgroup: the grid may overshoot
    uint grp = wg / p.nChunks, ck = wg % p.nChunks;
    uint first = ck * p.chunk;
    uint cnt = min(p.chunk, p.gsize - first);
    uint base = grp * p.gsize + first;

    float n = 0.0, mean = 0.0, m2 = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < cnt; i += GN_WG) {
        float v = x_ld(base + i);
        n += 1.0;
        float d = v - mean;
        mean += d / n;
        m2 += d * (v - mean);
    }
    mergeGroup(n, mean, m2);
    if (gl_LocalInvocationID.x == 0) {
        part_st(2 * wg, mean);
        part_st(2 * wg + 1, m2);
    }
}
