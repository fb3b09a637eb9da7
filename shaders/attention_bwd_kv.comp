#version 450
// attention_bwd_kv: the key/value-gradient pass of the attention backward
// (see graph/grad_conv_attention.go). Per key j,
//   dv_j = sum_i P_ij dO_i,   dk_j = scale * sum_i P_ij (dP_ij - D_i) q_i,
// P_ij = exp2(s_ij - L_i), s_ij = scale*log2(e) q_i.k_j, dP_ij = dO_i.v_j,
// with L and D from attention_bwd_stats. A workgroup owns BKV keys of one
// (batch, head) and walks the queries in blocks of BQ, staging q, dO, L and
// D in shared memory; with the causal mask it starts at its first key
// (earlier queries see none of its keys). Each key keeps k, v and both
// gradients in registers: LANES threads may share a key (vec4 chunks l,
// l+LANES, ... of the head, partial dots summed through shared memory) and
// each thread owns RK keys, so every vec4 it reads from shared memory feeds
// RK products.
//
// The output is flat: dk [batch, nk, heads*DH] then, from dvOffset,
// dv [batch, nk, heads*DHV].
#include "common.glsl"
layout(local_size_x_id = 4) in;
layout(constant_id = 0) const uint DH = 40;   // q/k head dim
layout(constant_id = 1) const uint DHV = 40;  // v head dim
layout(constant_id = 2) const uint LANES = 1; // threads per key, dividing the workgroup
layout(constant_id = 3) const uint RK = 1;    // keys per thread
const uint WG = gl_WorkGroupSize.x;
const uint TK = WG / LANES; // key slots per workgroup
const uint BKV = TK * RK;   // keys per workgroup
const uint BQ = 16;         // queries per block
const uint DH4 = (DH + 3) / 4;
const uint DHV4 = (DHV + 3) / 4;
const uint DQ = (DH4 + LANES - 1) / LANES;  // k/dk chunks per thread and key
const uint DV = (DHV4 + LANES - 1) / LANES; // v/dv chunks per thread and key
const uint PSTRIDE = 2 * BQ + 1;            // scores then dP, padded
const uint PARTS = LANES > 1 ? WG * RK * PSTRIDE : 1;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) readonly buffer G { float dout[]; };
layout(std430, binding = 4) readonly buffer S { float stats[]; };
layout(std430, binding = 5) writeonly buffer DKV { float dkv[]; };
layout(push_constant) uniform P {
    uint nq, nk, heads;
    uint kblocks; // ceil(nk / BKV)
    uint groups;  // kblocks * batch * heads
    uint causal;
    float scale2; // softmax scale times log2(e)
    float scale;  // softmax scale
    uint dvOffset; // batch * nk * heads * DH: where dv starts
} p;

shared vec4 Qs[BQ * DH4];
shared vec4 Gs[BQ * DHV4];
shared float Ls[BQ], Ds[BQ];
shared float part[PARTS];

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

void main() {
    uint g = linearGroup();
    if (g >= p.groups) return; // whole workgroup: the grid may overshoot
    uint kb = g % p.kblocks, bh = g / p.kblocks;
    uint b = bh / p.heads, h = bh % p.heads;
    uint tid = gl_LocalInvocationID.x;
    uint lane = tid % LANES, slot = tid / LANES;
    uint k0 = kb * BKV + slot; // key r of this thread is k0 + TK*r

    vec4 kr[RK * DQ]; // k, pre-scaled into the log2 domain
    vec4 vr[RK * DV];
    vec4 dk[RK * DQ]; // dk / scale
    vec4 dv[RK * DV];
    for (uint r = 0; r < RK; r++) {
        uint j = k0 + TK * r;
        bool ok = j < p.nk;
        uint kbase = ((b * p.nk + j) * p.heads + h) * DH;
        uint vbase = ((b * p.nk + j) * p.heads + h) * DHV;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            kr[r * DQ + e] = (ok && c < DH4) ? loadK(kbase, c) * p.scale2 : vec4(0.0);
            dk[r * DQ + e] = vec4(0.0);
        }
        for (uint e = 0; e < DV; e++) {
            uint c = lane + LANES * e;
            vr[r * DV + e] = (ok && c < DHV4) ? loadV(vbase, c) : vec4(0.0);
            dv[r * DV + e] = vec4(0.0);
        }
    }

    uint qstride = p.heads * DH, gstride = p.heads * DHV;
    uint istart = p.causal != 0 ? min(kb * BKV, p.nq) : 0;
    for (uint i0 = istart; i0 < p.nq; i0 += BQ) {
        for (uint x = tid; x < BQ * DH4; x += WG) {
            uint i = i0 + x / DH4;
            Qs[x] = i < p.nq ? loadQ((b * p.nq + i) * qstride + h * DH, x % DH4) : vec4(0.0);
        }
        for (uint x = tid; x < BQ * DHV4; x += WG) {
            uint i = i0 + x / DHV4;
            Gs[x] = i < p.nq ? loadG((b * p.nq + i) * gstride + h * DHV, x % DHV4) : vec4(0.0);
        }
        for (uint x = tid; x < BQ; x += WG) {
            uint i = i0 + x;
            uint at = (bh * p.nq + i) * 2;
            Ls[x] = i < p.nq ? stats[at] : 0.0;
            Ds[x] = i < p.nq ? stats[at + 1] : 0.0;
        }
        barrier();

        float s[RK * BQ], dp[RK * BQ];
        for (uint ii = 0; ii < BQ; ii++) {
            float ss[RK], sp[RK];
            for (uint r = 0; r < RK; r++) {
                ss[r] = 0.0;
                sp[r] = 0.0;
            }
            for (uint e = 0; e < DQ; e++) {
                uint c = lane + LANES * e;
                if (c < DH4) {
                    vec4 qv = Qs[ii * DH4 + c];
                    for (uint r = 0; r < RK; r++) ss[r] += dot(kr[r * DQ + e], qv);
                }
            }
            for (uint e = 0; e < DV; e++) {
                uint c = lane + LANES * e;
                if (c < DHV4) {
                    vec4 gv = Gs[ii * DHV4 + c];
                    for (uint r = 0; r < RK; r++) sp[r] += dot(vr[r * DV + e], gv);
                }
            }
            for (uint r = 0; r < RK; r++) {
                s[r * BQ + ii] = ss[r];
                dp[r * BQ + ii] = sp[r];
            }
        }
        if (LANES > 1) {
            for (uint r = 0; r < RK; r++) {
                for (uint ii = 0; ii < BQ; ii++) {
                    part[(tid * RK + r) * PSTRIDE + ii] = s[r * BQ + ii];
                    part[(tid * RK + r) * PSTRIDE + BQ + ii] = dp[r * BQ + ii];
                }
            }
            barrier();
            for (uint r = 0; r < RK; r++) {
                for (uint ii = 0; ii < 2 * BQ; ii++) {
                    float t = 0.0;
                    for (uint x = 0; x < LANES; x++) t += part[((slot * LANES + x) * RK + r) * PSTRIDE + ii];
                    if (ii < BQ) s[r * BQ + ii] = t;
                    else dp[r * BQ + ii - BQ] = t;
                }
            }
        }

        // s becomes P, dp becomes dS / scale = P (dP - D); both zero for
        // queries that do not see the key.
        uint in_ = min(p.nq - i0, BQ); // queries of this block that exist
        for (uint r = 0; r < RK; r++) {
            uint j = k0 + TK * r;
            for (uint ii = 0; ii < BQ; ii++) {
                bool seen = ii < in_ && (p.causal == 0 || i0 + ii >= j);
                float pv = seen ? exp2(s[r * BQ + ii] - Ls[ii]) : 0.0;
                s[r * BQ + ii] = pv;
                dp[r * BQ + ii] = pv * (dp[r * BQ + ii] - Ds[ii]);
            }
        }
        for (uint ii = 0; ii < in_; ii++) {
            for (uint e = 0; e < DV; e++) {
                uint c = lane + LANES * e;
                if (c < DHV4) {
                    vec4 gv = Gs[ii * DHV4 + c];
                    for (uint r = 0; r < RK; r++) dv[r * DV + e] += s[r * BQ + ii] * gv;
                }
            }
            for (uint e = 0; e < DQ; e++) {
                uint c = lane + LANES * e;
                if (c < DH4) {
                    vec4 qv = Qs[ii * DH4 + c];
                    for (uint r = 0; r < RK; r++) dk[r * DQ + e] += dp[r * BQ + ii] * qv;
                }
            }
        }
        barrier(); // Qs, Gs, Ls, Ds and part are rewritten by the next block
    }

    for (uint r = 0; r < RK; r++) {
        uint j = k0 + TK * r;
        if (j >= p.nk) continue;
        uint kbase = ((b * p.nk + j) * p.heads + h) * DH;
        uint vbase = p.dvOffset + ((b * p.nk + j) * p.heads + h) * DHV;
        for (uint e = 0; e < DQ; e++) {
            uint c = lane + LANES * e;
            for (uint t = 0; t < 4; t++) {
                if (c < DH4 && 4 * c + t < DH) dkv[kbase + 4 * c + t] = dk[r * DQ + e][t] * p.scale;
            }
        }
        for (uint e = 0; e < DV; e++) {
            uint c = lane + LANES * e;
            for (uint t = 0; t < 4; t++) {
                if (c < DHV4 && 4 * c + t < DHV) dkv[vbase + 4 * c + t] = dv[r * DV + e][t];
            }
        }
    }
}
