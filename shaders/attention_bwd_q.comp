#version 450
// attention_bwd_q: the query-gradient pass of the attention backward (see
// graph/grad_conv_attention.go). Per query i,
//   dq_i = scale * sum_j P_ij (dP_ij - D_i) k_j,
// P_ij = exp2(s_ij - L_i), s_ij = scale*log2(e) q_i.k_j, dP_ij = dO_i.v_j,
// with L and D from attention_bwd_stats. A workgroup owns BQ queries of one
// (batch, head) and walks the keys in blocks of BK staged in shared memory;
// since L is final, every key is handled on its own: no running maximum, no
// rescaling.
//
// Each thread owns RQ queries, so every vec4 it reads from shared memory
// feeds RQ products (CPU implementations such as lavapipe run a shared load
// as a loop over SIMD lanes; this reuse is what makes them fast). With
// LANES = 1 the keys are a plain loop over scalars, which also keeps
// lavapipe's compile time small. LANES > 1 threads share a query (each
// owning vec4 chunks l, l+LANES, ... of the head, bounding a GPU thread's
// registers at head dim 160): the partial dots of a whole key block are then
// summed through shared memory, in loops of fixed length so that the
// per-key arrays stay in registers.
#include "common.glsl"
layout(local_size_x_id = 4) in;
layout(constant_id = 0) const uint DH = 40;   // q/k head dim
layout(constant_id = 1) const uint DHV = 40;  // v head dim
layout(constant_id = 2) const uint LANES = 1; // threads per query, dividing the workgroup
layout(constant_id = 3) const uint RQ = 1;    // queries per thread
const uint WG = gl_WorkGroupSize.x;
const uint TQ = WG / LANES; // query slots per workgroup
const uint BQ = TQ * RQ;    // queries per workgroup
const uint BK = 16;         // keys per block
const uint DH4 = (DH + 3) / 4;
const uint DHV4 = (DHV + 3) / 4;
const uint DQ = (DH4 + LANES - 1) / LANES;  // q/dq chunks per thread and query
const uint DV = (DHV4 + LANES - 1) / LANES; // dO chunks per thread and query
const uint PSTRIDE = 2 * BK + 1;            // scores then dP, padded
const uint PARTS = LANES > 1 ? WG * RQ * PSTRIDE : 1;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer G { float dout[]; };
layout(std430, binding = 4) readonly buffer S { float stats[]; };
layout(std430, binding = 5) writeonly buffer DQ_ { float dq[]; };
layout(push_constant) uniform P {
    uint nq, nk, heads;
    uint qblocks; // ceil(nq / BQ)
    uint groups;  // qblocks * batch * heads
    uint causal;  // 0: no mask; else query i sees keys j < i + causal (1 + the offset)
    float scale2; // softmax scale times log2(e)
    float scale;  // softmax scale
} p;

shared vec4 Ks[BK * DH4];
shared vec4 Vs[BK * DHV4];
shared float part[PARTS]; // partial dots of the LANES threads of a query

// This thread's queries: index, q pre-scaled into the log2 domain, dO, the
// dq accumulator (without the final scale), L and D.
uint qi[RQ];
vec4 qr[RQ * DQ];
vec4 gr[RQ * DV];
vec4 acc[RQ * DQ];
float L[RQ], D[RQ];
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
vec4 loadV(uint base, uint c) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < DHV) r[t] = v[base + 4 * c + t];
    return r;
}
vec4 loadG(uint base, uint c) {
    vec4 r = vec4(0.0);
    for (uint t = 0; t < 4; t++) if (4 * c + t < DHV) r[t] = dout[base + 4 * c + t];
    return r;
}

// dots returns this thread's share of q.k and dO.v for key jj of the block.
void dots(uint jj, out float ss[RQ], out float sp[RQ]) {
    for (uint r = 0; r < RQ; r++) {
        ss[r] = 0.0;
        sp[r] = 0.0;
    }
    for (uint e = 0; e < DQ; e++) {
        uint c = lane + LANES * e;
        if (c < DH4) {
            vec4 kv = Ks[jj * DH4 + c];
            for (uint r = 0; r < RQ; r++) ss[r] += dot(qr[r * DQ + e], kv);
        }
    }
    for (uint e = 0; e < DV; e++) {
        uint c = lane + LANES * e;
        if (c < DHV4) {
            vec4 vv = Vs[jj * DHV4 + c];
            for (uint r = 0; r < RQ; r++) sp[r] += dot(gr[r * DV + e], vv);
        }
    }
}

// accumulate adds key j's contribution to dq given the full dots: dS/scale
// = P (dP - D), zero where the causal mask hides the key.
void accumulate(uint jj, uint j, float ss[RQ], float sp[RQ]) {
    float ds[RQ];
    for (uint r = 0; r < RQ; r++) {
        bool seen = p.causal == 0 || j < qi[r] + p.causal;
        ds[r] = seen ? exp2(ss[r] - L[r]) * (sp[r] - D[r]) : 0.0;
    }
    for (uint e = 0; e < DQ; e++) {
        uint c = lane + LANES * e;
        if (c < DH4) {
            vec4 kv = Ks[jj * DH4 + c];
            for (uint r = 0; r < RQ; r++) acc[r * DQ + e] += ds[r] * kv;
        }
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
        bool ok = i < p.nq;
        uint qbase = ((b * p.nq + i) * p.heads + h) * DH;
        uint gbase = ((b * p.nq + i) * p.heads + h) * DHV;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            qr[r * DQ + e] = (ok && c < DH4) ? loadQ(qbase, c) * p.scale2 : vec4(0.0);
            acc[r * DQ + e] = vec4(0.0);
        }
        for (uint e = 0; e < DV; e++) {
            uint c = lane + LANES * e;
            gr[r * DV + e] = (ok && c < DHV4) ? loadG(gbase, c) : vec4(0.0);
        }
        uint at = (bh * p.nq + i) * 2;
        L[r] = ok ? stats[at] : 0.0;
        D[r] = ok ? stats[at + 1] : 0.0;
    }

    // With the causal mask no query of this block sees keys past its last's.
    uint kend = p.causal != 0 ? min(p.nk, qb * BQ + BQ - 1 + p.causal) : p.nk;
    uint kstride = p.heads * DH, vstride = p.heads * DHV;
    for (uint j0 = 0; j0 < kend; j0 += BK) {
        for (uint x = tid; x < BK * DH4; x += WG) {
            uint j = j0 + x / DH4;
            Ks[x] = j < p.nk ? loadK((b * p.nk + j) * kstride + h * DH, x % DH4) : vec4(0.0);
        }
        for (uint x = tid; x < BK * DHV4; x += WG) {
            uint j = j0 + x / DHV4;
            Vs[x] = j < p.nk ? loadV((b * p.nk + j) * vstride + h * DHV, x % DHV4) : vec4(0.0);
        }
        barrier();
        uint jn = min(kend - j0, BK); // keys of this block that exist

        if (LANES == 1) {
            for (uint jj = 0; jj < jn; jj++) {
                float ss[RQ], sp[RQ];
                dots(jj, ss, sp);
                accumulate(jj, j0 + jj, ss, sp);
            }
        } else {
            for (uint jj = 0; jj < BK; jj++) {
                float ss[RQ], sp[RQ];
                dots(jj, ss, sp);
                for (uint r = 0; r < RQ; r++) {
                    part[(tid * RQ + r) * PSTRIDE + jj] = ss[r];
                    part[(tid * RQ + r) * PSTRIDE + BK + jj] = sp[r];
                }
            }
            barrier();
            for (uint jj = 0; jj < BK; jj++) {
                float ss[RQ], sp[RQ];
                for (uint r = 0; r < RQ; r++) {
                    ss[r] = 0.0;
                    sp[r] = 0.0;
                    for (uint x = 0; x < LANES; x++) {
                        uint at = ((slot * LANES + x) * RQ + r) * PSTRIDE + jj;
                        ss[r] += part[at];
                        sp[r] += part[at + BK];
                    }
                }
                if (jj < jn) accumulate(jj, j0 + jj, ss, sp);
            }
        }
        barrier(); // Ks, Vs and part are rewritten by the next block
    }

    for (uint r = 0; r < RQ; r++) {
        uint i = qi[r];
        if (i >= p.nq) continue;
        uint base = ((b * p.nq + i) * p.heads + h) * DH;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            for (uint t = 0; t < 4; t++) {
                if (c < DH4 && 4 * c + t < DH) dq[base + 4 * c + t] = acc[r * DQ + e][t] * p.scale;
            }
        }
    }
}
