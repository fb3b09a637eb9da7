#version 450
#include "storage.glsl"
// attention: out = softmax(scale * q k^T [+ causal mask]) v per (batch,
// head), flash style: the nq x nk scores are never stored. A workgroup owns
// BQ queries of one (batch, head) and walks the keys in blocks of BK staged
// in shared memory, keeping a running max and sum per query (online
// softmax) so each key block is read once per workgroup.
//
// Two thread layouts, picked per device by graph/record_attention.go:
// - GPU (PERKEY false, RQ 1): one query per thread, or LANES threads per
//   query splitting its head into vec4 chunks (lane l owns chunks l,
//   l+LANES, ...) to bound registers at SD's head dim 160. A block's scores
//   are computed first (partial dots summed through shared memory), then
//   the running max moves once per block.
// - CPU (PERKEY true, LANES 1): RQ queries per thread, so every vec4 read
//   from shared memory feeds RQ dot products; lavapipe executes a shared
//   load as a loop over its SIMD lanes, and this reuse is what makes it
//   fast. The max moves per key, with the rescale fused into the P.V
//   update, so no per-block score array is needed and the key loop can stay
//   a loop while the loops over queries and chunks inside it unroll
//   (indexing the per-thread arrays with constants keeps them in
//   registers; lavapipe's spilled arrays are slow).
// Head dims are specialization constants so per-thread arrays have fixed
// sizes; rows are handled as zero-padded vec4 chunks.
//
// Scores are kept in the log2 domain (q pre-scaled by scale*log2(e)) so the
// exponentials are exp2. Masked and out-of-range keys are skipped
// explicitly, never through infinities.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
layout(local_size_x_id = 4) in;
layout(constant_id = 0) const uint DH = 40;        // q/k head dim
layout(constant_id = 1) const uint DHV = 40;       // v head dim
layout(constant_id = 2) const uint LANES = 1;      // threads per query, dividing the workgroup
layout(constant_id = 3) const uint RQ = 1;         // queries per thread
layout(constant_id = 5) const bool PERKEY = false; // CPU layout (ignored unless LANES is 1)
const uint WG = gl_WorkGroupSize.x;
const uint TQ = WG / LANES; // query slots per workgroup
const uint BQ = TQ * RQ;    // queries per workgroup
const uint BK = 16;         // keys per block
const uint DH4 = (DH + 3) / 4;
const uint DHV4 = (DHV + 3) / 4;
const uint DQ = (DH4 + LANES - 1) / LANES;  // q chunks per thread and query
const uint DV = (DHV4 + LANES - 1) / LANES; // output chunks per thread and query
const uint PARTS = LANES > 1 ? WG * RQ * (BK + 1) : 1;
const bool ONLINE = PERKEY && LANES == 1;
const uint SCORES = ONLINE ? 1 : RQ * BK;

RBUF(0, q)
RBUF(1, k)
RBUF(2, v)
WBUF(3, o)
layout(push_constant) uniform P {
    uint nq, nk, heads;
    uint qblocks; // ceil(nq / BQ)
    uint groups;  // qblocks * batch * heads
    uint causal;  // 0: no mask; else query i sees keys j < i + causal (1 + the offset)
    float scale;  // softmax scale times log2(e)
} p;

shared vec4 Ks[BK * DH4];
shared vec4 Vs[BK * DHV4];
shared float part[PARTS]; // partial dots of the LANES threads of a query

// The most negative float stands in for "no key seen yet"; exp2 of its
// difference with any real score is exactly 0.
const float NEG = -3.402823e38;

// loadQ, loadK and loadV read floats 4c..4c+3 of a row of n floats that
// starts at base, with zeros past its end.
vec4 loadQ(uint base, uint c, uint n) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < n) r[t] = q_ld(base + 4 * c + t);
    return r;
}
vec4 loadK(uint base, uint c, uint n) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < n) r[t] = k_ld(base + 4 * c + t);
    return r;
}
vec4 loadV(uint base, uint c, uint n) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < n) r[t] = v_ld(base + 4 * c + t);
    return r;
}

void main() {
    uint g = linearGroup();
    if (g >= p.groups) return; // whole workgroup: the grid may overshoot
    uint qb = g % p.qblocks, bh = g / p.qblocks;
    uint b = bh / p.heads, h = bh % p.heads;
    uint tid = gl_LocalInvocationID.x;
    uint lane = tid % LANES, slot = tid / LANES;
    uint q0 = qb * BQ + slot; // query r of this thread is q0 + TQ*r

    vec4 qr[RQ * DQ];
    vec4 acc[RQ * DV];
    float m[RQ], l[RQ];
    for (uint r = 0; r < RQ; r++) {
        uint i = q0 + TQ * r;
        uint base = ((b * p.nq + i) * p.heads + h) * DH;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            qr[r * DQ + e] = (i < p.nq && c < DH4) ? loadQ(base, c, DH) * p.scale : vec4(0.0);
        }
        for (uint e = 0; e < DV; e++) acc[r * DV + e] = vec4(0.0);
        m[r] = NEG;
        l[r] = 0.0;
    }

    // With the causal mask no query of this block sees keys past its last's.
    uint kend = p.causal != 0 ? min(p.nk, qb * BQ + BQ - 1 + p.causal) : p.nk;
    uint kstride = p.heads * DH, vstride = p.heads * DHV;
    [[dont_unroll]] for (uint j0 = 0; j0 < kend; j0 += BK) {
        for (uint x = tid; x < BK * DH4; x += WG) {
            uint j = j0 + x / DH4;
            Ks[x] = j < p.nk ? loadK((b * p.nk + j) * kstride + h * DH, x % DH4, DH) : vec4(0.0);
        }
        for (uint x = tid; x < BK * DHV4; x += WG) {
            uint j = j0 + x / DHV4;
            Vs[x] = j < p.nk ? loadV((b * p.nk + j) * vstride + h * DHV, x % DHV4, DHV) : vec4(0.0);
        }
        barrier();

        // Keys of this block that exist, and that each query sees.
        uint jn = min(kend - j0, BK);
        uint jlim[RQ];
        for (uint r = 0; r < RQ; r++) {
            uint i = q0 + TQ * r;
            jlim[r] = p.causal == 0 ? jn : (i + p.causal > j0 ? min(jn, i + p.causal - j0) : 0);
        }

        if (ONLINE) {
            [[dont_unroll]] for (uint jj = 0; jj < jn; jj++) {
                float sc[RQ];
                for (uint r = 0; r < RQ; r++) sc[r] = 0.0;
                for (uint e = 0; e < DH4; e++) {
                    vec4 kv = Ks[jj * DH4 + e];
                    for (uint r = 0; r < RQ; r++) sc[r] += dot(qr[r * DQ + e], kv);
                }
                float pk[RQ], alpha[RQ];
                for (uint r = 0; r < RQ; r++) {
                    bool seen = jj < jlim[r];
                    float mn = seen ? max(m[r], sc[r]) : m[r];
                    alpha[r] = exp2(m[r] - mn);
                    pk[r] = seen ? exp2(sc[r] - mn) : 0.0;
                    l[r] = l[r] * alpha[r] + pk[r];
                    m[r] = mn;
                }
                for (uint e = 0; e < DHV4; e++) {
                    vec4 vv = Vs[jj * DHV4 + e];
                    for (uint r = 0; r < RQ; r++) acc[r * DV + e] = acc[r * DV + e] * alpha[r] + pk[r] * vv;
                }
            }
        } else {
            float s[SCORES];
            for (uint jj = 0; jj < BK; jj++) {
                float sum[RQ];
                for (uint r = 0; r < RQ; r++) sum[r] = 0.0;
                for (uint e = 0; e < DQ; e++) {
                    uint c = lane + LANES * e;
                    if (c < DH4) {
                        vec4 kv = Ks[jj * DH4 + c];
                        for (uint r = 0; r < RQ; r++) sum[r] += dot(qr[r * DQ + e], kv);
                    }
                }
                for (uint r = 0; r < RQ; r++) s[r * BK + jj] = sum[r];
            }
            if (LANES > 1) {
                for (uint r = 0; r < RQ; r++)
                    for (uint jj = 0; jj < BK; jj++) part[(tid * RQ + r) * (BK + 1) + jj] = s[r * BK + jj];
                barrier();
                for (uint r = 0; r < RQ; r++) {
                    for (uint jj = 0; jj < BK; jj++) {
                        float t = 0.0;
                        for (uint x = 0; x < LANES; x++) t += part[((slot * LANES + x) * RQ + r) * (BK + 1) + jj];
                        s[r * BK + jj] = t;
                    }
                }
            }
            // Rescale what was accumulated to the block's new maximum and
            // turn its scores into weights (0 for keys not seen).
            for (uint r = 0; r < RQ; r++) {
                float bm = NEG;
                for (uint jj = 0; jj < BK; jj++) {
                    if (jj < jlim[r]) bm = max(bm, s[r * BK + jj]);
                }
                float mn = max(m[r], bm);
                float alpha = exp2(m[r] - mn);
                m[r] = mn;
                float sum = 0.0;
                for (uint jj = 0; jj < BK; jj++) {
                    float pj = jj < jlim[r] ? exp2(s[r * BK + jj] - mn) : 0.0;
                    s[r * BK + jj] = pj;
                    sum += pj;
                }
                l[r] = l[r] * alpha + sum;
                for (uint e = 0; e < DV; e++) acc[r * DV + e] *= alpha;
            }
            for (uint jj = 0; jj < BK; jj++) {
                if (jj >= jn) break;
                for (uint e = 0; e < DV; e++) {
                    uint c = lane + LANES * e;
                    if (c < DHV4) {
                        vec4 vv = Vs[jj * DHV4 + c];
                        for (uint r = 0; r < RQ; r++) acc[r * DV + e] += s[r * BK + jj] * vv;
                    }
                }
            }
        }
        barrier(); // Ks, Vs and part are rewritten by the next block
    }

    for (uint r = 0; r < RQ; r++) {
        uint i = q0 + TQ * r;
        if (i >= p.nq) continue;
        float inv = l[r] > 0.0 ? 1.0 / l[r] : 0.0;
        uint base = ((b * p.nq + i) * p.heads + h) * DHV;
        for (uint e = 0; e < DV; e++) {
            uint c = lane + LANES * e;
            for (uint t = 0; t < 4; t++) {
                if (c < DHV4 && 4 * c + t < DHV) o_st(base + 4 * c + t, acc[r * DV + e][t] * inv);
            }
        }
    }
}
