#version 450
// attention_bwd_stats: first pass of the attention backward (see
// graph/grad_conv_attention.go). Per (batch, head, query) it writes
// stats[.., 0] = L, the base-2 log-sum-exp of the query's scores
// s = scale*log2(e) q.k over the keys it sees, and stats[.., 1] = D = dO.O
// (the forward output and its gradient), which equals rowsum(P * dP). The
// later passes recompute P = exp2(s - L) directly and never store the
// nq x nk matrix.
//
// A workgroup owns BQ queries of one (batch, head), walks the keys in
// blocks of BK staged in shared memory and keeps a running maximum m and
// sum l of exp2(s - m) per query. Threads own RQ queries each; with
// LANES = 1 the keys are a plain loop over scalars, and LANES > 1 threads
// share a query (vec4 chunks l, l+LANES, ... of the head) and sum the
// partial dots of a key block through shared memory, as in
// attention_bwd_q.comp.
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
    uint causal;  // 0: no mask; else query i sees keys j < i + causal (1 + the offset)
    float scale2; // softmax scale times log2(e)
    uint dhv;     // value head dim (of o and dout)
} p;

shared vec4 Ks[BK * DH4];
shared float part[PARTS]; // partial dots of the LANES threads of a query

// The most negative float stands in for "no key seen yet": exp2 of its
// difference with any real score is exactly 0.
const float NEG = -3.402823e38;

// This thread's queries: index, q pre-scaled into the log2 domain, and the
// running maximum and sum.
uint qi[RQ];
vec4 qr[RQ * DQ];
float m[RQ], l[RQ];
uint lane;

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

// dots returns this thread's share of q.k for key jj of the block.
void dots(uint jj, out float ss[RQ]) {
    for (uint r = 0; r < RQ; r++) ss[r] = 0.0;
    for (uint e = 0; e < DQ; e++) {
        uint c = lane + LANES * e;
        if (c < DH4) {
            vec4 kv = Ks[jj * DH4 + c];
            for (uint r = 0; r < RQ; r++) ss[r] += dot(qr[r * DQ + e], kv);
        }
    }
}

// update folds key j's full scores into the running maximum and sum. The
// sum is rescaled only when the maximum grows, which soon becomes rare.
void update(uint j, float ss[RQ]) {
    for (uint r = 0; r < RQ; r++) {
        if (p.causal != 0 && j >= qi[r] + p.causal) continue;
        float s = ss[r];
        if (s > m[r]) {
            l[r] *= exp2(m[r] - s);
            m[r] = s;
        }
        l[r] += exp2(s - m[r]);
    }
}

void main() {
    uint g = linearGroup();
    if (g >= p.groups) return; // whole workgroup: the grid may overshoot
    uint qb = g % p.qblocks, bh = g / p.qblocks;
    uint b = bh / p.heads, h = bh % p.heads;
    uint tid = gl_LocalInvocationID.x;
    lane = tid % LANES;
    uint slot = tid / LANES;
    for (uint r = 0; r < RQ; r++) {
        uint i = qb * BQ + slot + TQ * r;
        qi[r] = i;
        uint base = ((b * p.nq + i) * p.heads + h) * DH;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            qr[r * DQ + e] = (i < p.nq && c < DH4) ? loadQ(base, c) * p.scale2 : vec4(0.0);
        }
        m[r] = NEG;
        l[r] = 0.0;
    }

    // With the causal mask no query of this block sees keys past its last's.
    uint kend = p.causal != 0 ? min(p.nk, qb * BQ + BQ - 1 + p.causal) : p.nk;
    uint kstride = p.heads * DH;
    for (uint j0 = 0; j0 < kend; j0 += BK) {
        for (uint x = tid; x < BK * DH4; x += WG) {
            uint j = j0 + x / DH4;
            Ks[x] = j < p.nk ? loadK((b * p.nk + j) * kstride + h * DH, x % DH4) : vec4(0.0);
        }
        barrier();
        uint jn = min(kend - j0, BK); // keys of this block that exist

        if (LANES == 1) {
            for (uint jj = 0; jj < jn; jj++) {
                float ss[RQ];
                dots(jj, ss);
                update(j0 + jj, ss);
            }
        } else {
            for (uint jj = 0; jj < BK; jj++) {
                float ss[RQ];
                dots(jj, ss);
                for (uint r = 0; r < RQ; r++) part[(tid * RQ + r) * PSTRIDE + jj] = ss[r];
            }
            barrier();
            for (uint jj = 0; jj < BK; jj++) {
                float ss[RQ];
                for (uint r = 0; r < RQ; r++) {
                    ss[r] = 0.0;
                    for (uint x = 0; x < LANES; x++) ss[r] += part[((slot * LANES + x) * RQ + r) * PSTRIDE + jj];
                }
                if (jj < jn) update(j0 + jj, ss);
            }
        }
        barrier(); // Ks and part are rewritten by the next block
    }

    if (lane != 0) return;
    for (uint r = 0; r < RQ; r++) {
        uint i = qi[r];
        if (i >= p.nq) continue;
        uint base = ((b * p.nq + i) * p.heads + h) * p.dhv;
        float d = 0.0;
        for (uint e = 0; e < p.dhv; e++) d += o[base + e] * dout[base + e];
        // Every query sees at least one key (nk >= 1; causal includes j = i + offset).
        uint at = (bh * p.nq + i) * 2;
        stats[at] = l[r] > 0.0 ? m[r] + log2(l[r]) : 0.0;
        stats[at + 1] = d;
    }
}
