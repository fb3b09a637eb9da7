#version 450
#include "storage.glsl"
// groupnorm: second half (see groupnorm_stats.comp). Each workgroup owns one
// chunk of one group: it merges the group's chunk statistics (at most 256,
// so this costs less than a separate dispatch would), then normalises its
// chunk with the channel's gamma/beta and the optional fused SiLU.
#include "common.glsl"
#include "groupnorm_stats.glsl"
layout(local_size_x = GN_WG) in;
layout(constant_id = 0) const bool SILU = false;
RBUF(0, x)
RBUF(1, gamma)
RBUF(2, beta)
RBUF(3, part) // chunk statistics: program scratch, not a graph tensor, so always fp32
WBUF(4, y)
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
        merge(n, mean, m2, nj, part_ld(at), part_ld(at + 1));
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
        float v = (x_ld(idx) - mean) * rstd * gamma_ld(ch) + beta_ld(ch);
        if (SILU) v = v / (1.0 + exp(-v));
        y_st(idx, v);
    }
}
