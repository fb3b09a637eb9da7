#version 450
// attention_bwd_stats: first pass of the attention backward (see
// graph/grad_conv_attention.go). Per (batch, head, query) it writes
// stats[.., 0] = L, the base-2 log-sum-exp of the query's scores
// scale*log2(e)*q.k over the keys it sees, and stats[.., 1] = D = dO.O
// (the forward output and its gradient), which equals rowsum(P * dP). The
// later passes recompute P = exp2(s - L) directly, without a running
// maximum, and never store the nq x nk matrix.
//
// The score loop is the forward kernel's (attention.comp) without the
// values: a workgroup owns BQ queries of one (batch, head), walks the keys
// in blocks of BK staged in shared memory and keeps a running maximum and
// sum per query. LANES threads may share a query (each owning vec4 chunks
// l, l+LANES, ... of the head, partial dots summed through shared memory)
// and each thread owns RQ queries, so a shared load feeds RQ dots.
#include "common.glsl"
layout(local_size_x_id = 3) in;
layout(constant_id = 0) const uint DH = 40;   // q/k head dim
layout(constant_id = 1) const uint LANES = 1; // threads per query, dividing the workgroup
layout(constant_id = 2) const uint RQ = 1;    // queries per thread
const uint WG = gl_WorkGroupSize.x;
const uint TQ = WG / LANES; // query slots per workgroup
const uint BQ = TQ * RQ;    // queries per workgroup
const uint BK = 16;         // keys per block
const uint DH4 = (DH + 3) / 4;
const uint DQ = (DH4 + LANES - 1) / LANES; // q chunks per thread and query
const uint PSTRIDE = BK + 1;               // padded against bank conflicts
const uint PARTS = LANES > 1 ? WG * RQ * PSTRIDE : 1;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer O { float o[]; };
layout(std430, binding = 3) readonly buffer G { float dout[]; };
layout(std430, binding = 4) writeonly buffer S { float stats[]; };
layout(push_constant) uniform P {
    uint nq, nk, heads;
    uint qblocks; // ceil(nq / BQ)
    uint groups;  // qblocks * batch * heads
    uint causal;
    float scale2; // softmax scale times log2(e)
    uint dhv;     // value head dim (of o and dout)
} p;

shared vec4 Ks[BK * DH4];
shared float part[PARTS];

// The most negative float stands in for "no key seen yet"; exp2 of its
// difference with any real score is exactly 0.
const float NEG = -3.402823e38;

vec4 loadQ(uint base, uint c) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < DH) r[t] = q[base + 4 * c + t];
    return r;
}
vec4 loadK(uint base, uint c) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < DH) r[t] = k[base + 4 * c + t];
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
    float m[RQ], l[RQ];
    for (uint r = 0; r < RQ; r++) {
        uint i = q0 + TQ * r;
        uint base = ((b * p.nq + i) * p.heads + h) * DH;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            qr[r * DQ + e] = (i < p.nq && c < DH4) ? loadQ(base, c) * p.scale2 : vec4(0.0);
        }
        m[r] = NEG;
        l[r] = 0.0;
    }

    // With the causal mask no query of this block sees keys past its last.
    uint kend = p.causal != 0 ? min(p.nk, qb * BQ + BQ) : p.nk;
    uint kstride = p.heads * DH;
    for (uint j0 = 0; j0 < kend; j0 += BK) {
        for (uint x = tid; x < BK * DH4; x += WG) {
            uint j = j0 + x / DH4;
            Ks[x] = j < p.nk ? loadK((b * p.nk + j) * kstride + h * DH, x % DH4) : vec4(0.0);
        }
        barrier();

        float s[RQ * BK];
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
                for (uint jj = 0; jj < BK; jj++) part[(tid * RQ + r) * PSTRIDE + jj] = s[r * BK + jj];
            barrier();
            for (uint r = 0; r < RQ; r++) {
                for (uint jj = 0; jj < BK; jj++) {
                    float t = 0.0;
                    for (uint x = 0; x < LANES; x++) t += part[((slot * LANES + x) * RQ + r) * PSTRIDE + jj];
                    s[r * BK + jj] = t;
                }
            }
        }

        uint jn = min(kend - j0, BK); // keys of this block that exist
        for (uint r = 0; r < RQ; r++) {
            uint i = q0 + TQ * r;
            uint jlim = jn;
            if (p.causal != 0) jlim = i >= j0 ? min(jlim, i - j0 + 1) : 0;
            float bm = NEG;
            for (uint jj = 0; jj < BK; jj++) {
                if (jj < jlim) bm = max(bm, s[r * BK + jj]);
            }
            float mn = max(m[r], bm);
            float sum = 0.0;
            for (uint jj = 0; jj < BK; jj++) {
                if (jj < jlim) sum += exp2(s[r * BK + jj] - mn);
            }
            l[r] = l[r] * exp2(m[r] - mn) + sum;
            m[r] = mn;
        }
        barrier(); // Ks and part are rewritten by the next block
    }

    if (lane != 0) return;
    for (uint r = 0; r < RQ; r++) {
        uint i = q0 + TQ * r;
        if (i >= p.nq) continue;
        uint base = ((b * p.nq + i) * p.heads + h) * p.dhv;
        float d = 0.0;
        for (uint e = 0; e < p.dhv; e++) d += o[base + e] * dout[base + e];
        // Every query sees at least one key (nk >= 1; causal includes j = i).
        uint at = (bh * p.nq + i) * 2;
        stats[at] = l[r] > 0.0 ? m[r] + log2(l[r]) : 0.0;
        stats[at + 1] = d;
    }
}
