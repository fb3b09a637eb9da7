// groupnorm_cpu: the same groupnorm as groupnorm_stats.comp +
// groupnorm.comp for CPU Vulkan devices (lavapipe), built like
// conv2d_cpu.glsl. There a workgroup barrier is a coroutine switch per
// invocation: the GPU kernels' two shared-memory merges made a groupnorm
// of the tiny UNet's 16 groups cost over 1 ms, most of it in those
// switches. Here a workgroup is one subgroup (one SIMD vector on lavapipe),
// with no shared memory and no barriers: each lane keeps its own Welford
// statistics over a strided share of the range, and the subgroup merges
// them through subgroupBroadcast, every lane folding the lanes' triples in
// the same order (identical results everywhere).
//
// Three kernels share this body (the .comp defines which):
//   GN_STATS (groupnorm_cpu_stats.comp): one workgroup per chunk writes the
//     chunk's mean and M2 to the scratch, as groupnorm_stats.comp does.
//   GN_APPLY (groupnorm_cpu.comp): one workgroup per chunk merges its
//     group's chunk statistics and normalises the chunk, as groupnorm.comp.
//   GN_FUSED (groupnorm_cpu_fused.comp): one workgroup per group computes
//     the statistics and normalises, in one dispatch (the recorder's choice
//     for groups of one chunk: a dispatch costs more than rereading a group
//     that small, which the first pass has just brought into cache).
//
// Every storage load is a loop over the SIMD lanes on lavapipe, and a vec4
// load costs about what a scalar one does, so where a channel plane is a
// whole number of vec4s (VEC4: hw % 4 == 0, hence also every group, chunk
// and plane boundary; bindings sit at 16-byte aligned offsets) the kernels
// load and store vec4s. The normalisation walks the channel planes of its
// range, loading gamma and beta once per plane, with no division per
// element.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#include "common.glsl"
#include "groupnorm_merge.glsl"
layout(local_size_x_id = 0) in; // one subgroup per workgroup
layout(constant_id = 0) const uint SG = 8; // the device's subgroup size
layout(constant_id = 1) const bool VEC4 = false; // hw % 4 == 0
layout(constant_id = 2) const bool SILU = false;

#if defined(GN_STATS)
RBUF4(0, x)
WBUF(1, part) // [nWork][2]: mean, M2 (program scratch, not a graph tensor, so always fp32)
#elif defined(GN_APPLY)
RBUF4(0, x)
RBUF(1, gamma)
RBUF(2, beta)
RBUF(3, part) // chunk statistics: program scratch, always fp32
WBUF4(4, y)
#elif defined(GN_FUSED)
RBUF4(0, x)
RBUF(1, gamma)
RBUF(2, beta)
WBUF4(3, y)
#else
#error "define GN_STATS, GN_APPLY or GN_FUSED"
#endif

layout(push_constant) uniform P {
    uint gsize;   // elements per group
    uint chunk;   // elements per chunk (the last chunk of a group may be short)
    uint nChunks; // chunks per group
    uint nWork;   // groups * nChunks over the whole batch
    uint c;       // channels
    uint hw;      // elements per channel plane
    float eps;
} p;

// foldLanes replaces every lane's statistics by those of the whole
// subgroup.
void foldLanes(inout float n, inout float mean, inout float m2) {
    float a = 0.0, b = 0.0, q = 0.0;
    for (uint j = 0; j < SG; j++) {
        merge(a, b, q, subgroupBroadcast(n, j), subgroupBroadcast(mean, j), subgroupBroadcast(m2, j));
    }
    n = a; mean = b; m2 = q;
}

// rangeStats is the (count, mean, M2) of x[base, base+cnt), in every lane.
void rangeStats(uint base, uint cnt, out float n, out float mean, out float m2) {
    uint lane = gl_SubgroupInvocationID;
    n = 0.0; mean = 0.0; m2 = 0.0;
    if (VEC4) {
        // Four Welford streams per lane sharing one count (one reciprocal
        // per vec4), merged at the end.
        float k = 0.0;
        vec4 mu = vec4(0.0), q = vec4(0.0);
        for (uint i = base / 4 + lane; i < (base + cnt) / 4; i += SG) {
            vec4 v = x_ld4(i);
            k += 1.0;
            vec4 d = v - mu;
            mu += d * (1.0 / k);
            q += d * (v - mu);
        }
        n = k; mean = mu.x; m2 = q.x;
        merge(n, mean, m2, k, mu.y, q.y);
        merge(n, mean, m2, k, mu.z, q.z);
        merge(n, mean, m2, k, mu.w, q.w);
    } else {
        for (uint i = base + lane; i < base + cnt; i += SG) {
            float v = x_ld(i);
            n += 1.0;
            float d = v - mean;
            mean += d / n;
            m2 += d * (v - mean);
        }
    }
    foldLanes(n, mean, m2);
}

#ifndef GN_STATS
// normalise writes y over [base, base+cnt) with the group's mean and
// 1/std, channel plane by channel plane.
void normalise(uint base, uint cnt, float mean, float rstd) {
    uint lane = gl_SubgroupInvocationID;
    uint end = base + cnt;
    for (uint s = base; s < end;) {
        uint plane = s / p.hw;
        uint e = min(end, (plane + 1) * p.hw);
        uint ch = plane % p.c;
        // (x - mean) * a + beta rather than x * a + (beta - mean * a):
        // the latter cancels when the mean is large next to the spread.
        float a = gamma_ld(ch) * rstd, b = beta_ld(ch);
        if (VEC4) {
            for (uint i = s / 4 + lane; i < e / 4; i += SG) {
                vec4 v = (x_ld4(i) - mean) * a + b;
                if (SILU) v = v / (1.0 + exp(-v));
                y_st4(i, v);
            }
        } else {
            for (uint i = s + lane; i < e; i += SG) {
                float v = (x_ld(i) - mean) * a + b;
                if (SILU) v = v / (1.0 + exp(-v));
                y_st(i, v);
            }
        }
        s = e;
    }
}
#endif

void main() {
    uint wg = linearGroup();
    if (wg >= p.nWork) return; // whole workgroup: the grid may overshoot
    uint grp = wg / p.nChunks, ck = wg % p.nChunks;
    uint first = ck * p.chunk;
    uint cnt = min(p.chunk, p.gsize - first);
    uint base = grp * p.gsize + first;

    float n, mean, m2;
#if defined(GN_STATS)
    rangeStats(base, cnt, n, mean, m2);
    if (gl_SubgroupInvocationID == 0) {
        part_st(2 * wg, mean);
        part_st(2 * wg + 1, m2);
    }
#else
#if defined(GN_FUSED)
    rangeStats(base, cnt, n, mean, m2); // the whole group: nChunks is 1
#else
    n = 0.0; mean = 0.0; m2 = 0.0;
    for (uint j = gl_SubgroupInvocationID; j < p.nChunks; j += SG) {
        float nj = float(min(p.chunk, p.gsize - j * p.chunk));
        uint at = 2 * (grp * p.nChunks + j);
        merge(n, mean, m2, nj, part_ld(at), part_ld(at + 1));
    }
    foldLanes(n, mean, m2);
#endif
    // Biased variance, as torch.group_norm.
    normalise(base, cnt, mean, 1.0 / sqrt(m2 / n + p.eps));
#endif
}
