#version 450
// attention: out = softmax(scale * q k^T [+ causal mask]) v per (batch,
// head), flash style: the nq x nk scores are never stored. A workgroup owns
// BQ queries of one (batch, head) and walks the keys in blocks of BK staged
// in shared memory, keeping a running max and sum per query (online
// softmax) so each key block is read once per workgroup.
//
// LANES threads share one query and split its head dimension (lane l owns
// elements l, l+LANES, ...), which bounds the registers per thread at large
// head dims (SD's 160); their partial q.k dots are summed through shared
// memory. Head dims are specialization constants so the per-thread arrays
// and loops have fixed sizes.
//
// Scores are kept in the log2 domain (q pre-scaled by scale*log2(e)) so the
// exponentials are exp2. Masked and out-of-range keys are skipped
// explicitly, never through infinities.
#extension GL_KHR_shader_subgroup_ballot : require
#include "common.glsl"
layout(local_size_x = 128) in;
layout(constant_id = 0) const uint DH = 40;   // q/k head dim
layout(constant_id = 1) const uint DHV = 40;  // v head dim
layout(constant_id = 2) const uint LANES = 1; // threads per query: 1, 2 or 4
layout(constant_id = 3) const uint SG = 0;     // subgroup size for broadcast reads (LANES 1), 0: off
const uint WG = 128;
const uint BQ = WG / LANES;
const uint BK = 16;
const uint DH4 = (DH + 3) / 4;    // head dims in vec4s, zero padded
const uint DHV4 = (DHV + 3) / 4;
const uint DQ = (DH4 + LANES - 1) / LANES;  // q vec4s per thread
const uint DV = (DHV4 + LANES - 1) / LANES; // output vec4s per thread

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(push_constant) uniform P {
    uint nq, nk, heads;
    uint qblocks; // ceil(nq / BQ)
    uint groups;  // qblocks * batch * heads
    uint causal;
    float scale;  // softmax scale times log2(e)
} p;

shared vec4 Ks[BK * DH4];
shared vec4 Vs[BK * DHV4];
shared float part[WG * (BK + 1)]; // partial dots when LANES > 1

// The most negative float stands in for "no key seen yet"; exp2 of its
// difference with any real score is exactly 0.
const float NEG = -3.402823e38;

// load4 reads elements 4c..4c+3 of a row of n floats, zero past its end.
vec4 load4(uint which, uint base, uint c, uint n) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) {
        uint d = 4 * c + t;
        if (d < n) r[t] = which == 0 ? q[base + d] : (which == 1 ? k[base + d] : v[base + d]);
    }
    return r;
}

void main() {
    uint g = linearGroup();
    if (g >= p.groups) return; // whole workgroup: the grid may overshoot
    uint qb = g % p.qblocks, bh = g / p.qblocks;
    uint b = bh / p.heads, h = bh % p.heads;
    uint tid = gl_LocalInvocationID.x;
    uint lane = tid % LANES, ql = tid / LANES;
    uint i = qb * BQ + ql; // this thread's query
    bool live = i < p.nq;

    vec4 qr[DQ];
    uint qbase = ((b * p.nq + i) * p.heads + h) * DH;
    for (uint e = 0; e < DQ; e++) {
        uint c = lane + LANES * e;
        qr[e] = (live && c < DH4) ? load4(0, qbase, c, DH) * p.scale : vec4(0.0);
    }
    vec4 acc[DV];
    for (uint e = 0; e < DV; e++) acc[e] = vec4(0.0);
    float m = NEG, l = 0.0;

    // With the causal mask no query of this block sees keys past its last.
    uint kend = p.causal != 0 ? min(p.nk, qb * BQ + BQ) : p.nk;
    uint kstride = p.heads * DH, vstride = p.heads * DHV;
    for (uint j0 = 0; j0 < kend; j0 += BK) {
        for (uint x = tid; x < BK * DH4; x += WG) {
            uint j = j0 + x / DH4;
            Ks[x] = j < p.nk ? load4(1, (b * p.nk + j) * kstride + h * DH, x % DH4, DH) : vec4(0.0);
        }
        for (uint x = tid; x < BK * DHV4; x += WG) {
            uint j = j0 + x / DHV4;
            Vs[x] = j < p.nk ? load4(2, (b * p.nk + j) * vstride + h * DHV, x % DHV4, DHV) : vec4(0.0);
        }
        barrier();

        uint jn = min(kend - j0, BK); // keys of this block that exist
        float s[BK];
        for (uint jj = 0; jj < jn; jj++) {
            float sum = 0.0;
            if (SG > 0) {
                // Each lane reads a different chunk of key jj and the
                // subgroup shares them: one shared load per SG chunks.
                vec4 kv;
                for (uint e = 0; e < DH4; e++) {
                    if (e % SG == 0) {
                        uint c = e + gl_SubgroupInvocationID;
                        kv = c < DH4 ? Ks[jj * DH4 + c] : vec4(0.0);
                    }
                    sum += dot(qr[e], subgroupBroadcast(kv, e % SG));
                }
            } else {
                for (uint e = 0; e < DQ; e++) {
                    uint c = lane + LANES * e;
                    if (c < DH4) sum += dot(qr[e], Ks[jj * DH4 + c]);
                }
            }
            s[jj] = sum;
        }
        if (LANES > 1) {
            for (uint jj = 0; jj < jn; jj++) part[tid * (BK + 1) + jj] = s[jj];
            barrier();
            for (uint jj = 0; jj < jn; jj++) {
                float t = 0.0;
                for (uint r = 0; r < LANES; r++) t += part[(ql * LANES + r) * (BK + 1) + jj];
                s[jj] = t;
            }
        }

        uint jlim = jn; // keys this query sees
        if (p.causal != 0) jlim = i >= j0 ? min(jlim, i - j0 + 1) : 0;
        float bm = NEG;
        for (uint jj = 0; jj < jn; jj++) {
            if (jj < jlim) bm = max(bm, s[jj]);
        }
        float mn = max(m, bm);
        float alpha = exp2(m - mn);
        l *= alpha;
        for (uint e = 0; e < DV; e++) acc[e] *= alpha;
        for (uint jj = 0; jj < jn; jj++) {
            // Masked keys weigh 0 rather than ending the loop early, which
            // keeps the subgroup together for the broadcasts below.
            float pj = jj < jlim ? exp2(s[jj] - mn) : 0.0;
            l += pj;
            if (SG > 0) {
                vec4 vv;
                for (uint e = 0; e < DHV4; e++) {
                    if (e % SG == 0) {
                        uint c = e + gl_SubgroupInvocationID;
                        vv = c < DHV4 ? Vs[jj * DHV4 + c] : vec4(0.0);
                    }
                    acc[e] += pj * subgroupBroadcast(vv, e % SG);
                }
            } else {
                for (uint e = 0; e < DV; e++) {
                    uint c = lane + LANES * e;
                    if (c < DHV4) acc[e] += pj * Vs[jj * DHV4 + c];
                }
            }
        }
        m = mn;
        barrier(); // Ks, Vs and part are rewritten by the next block
    }

    if (!live) return;
    float inv = l > 0.0 ? 1.0 / l : 0.0;
    uint obase = ((b * p.nq + i) * p.heads + h) * DHV;
    for (uint e = 0; e < DV; e++) {
        uint c = lane + LANES * e;
        for (uint t = 0; t < 4; t++) {
            uint d = 4 * c + t;
            if (c < DHV4 && d < DHV) o[obase + d] = acc[e][t] * inv;
        }
    }
}
