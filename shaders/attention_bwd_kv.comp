#version 450
// attention_bwd_kv: the key/value-gradient pass of the attention backward
// (see graph/grad_conv_attention.go). Per key j,
//   dv_j = sum_i P_ij dO_i,   dk_j = scale * sum_i P_ij (dP_ij - D_i) q_i,
// P_ij = exp2(s_ij - L_i), s_ij = scale*log2(e) q_i.k_j, dP_ij = dO_i.v_j,
// with L and D from attention_bwd_stats. A workgroup owns BKV keys of one
// (batch, head) and walks the queries in blocks of BQ, staging q, dO, L and
// D in shared memory; with the causal mask it starts at the first query
// that sees its first key (earlier queries see none of its keys).
//
// Each key keeps k, v and both gradients in registers. Each thread owns RK
// keys, so every vec4 it reads from shared memory feeds RK products; with
// LANES = 1 the queries are a plain loop over scalars. LANES > 1 threads
// share a key (vec4 chunks l, l+LANES, ... of the head, bounding a GPU
// thread's registers) and sum the partial dots of a whole query block
// through shared memory, in loops of fixed length so that the per-query
// arrays stay in registers. Same structure as attention_bwd_q.comp.
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
    uint causal;  // 0: no mask; else query i sees keys j < i + causal (1 + the offset)
    float scale2; // softmax scale times log2(e)
    float scale;  // softmax scale
    uint dvOffset; // batch * nk * heads * DH: where dv starts
} p;

shared vec4 Qs[BQ * DH4];
shared vec4 Gs[BQ * DHV4];
shared float Ls[BQ], Ds[BQ];
shared float part[PARTS]; // partial dots of the LANES threads of a key

// This thread's keys: index, k pre-scaled into the log2 domain, v, and the
// two gradients (dk without the final scale).
uint kj[RK];
vec4 kr[RK * DQ];
vec4 vr[RK * DV];
vec4 dk[RK * DQ];
vec4 dv[RK * DV];
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

// dots returns this thread's share of q.k and dO.v for query ii of the block.
void dots(uint ii, out float ss[RK], out float sp[RK]) {
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
}

// accumulate adds query i's contribution to dv (P dO) and dk (dS/scale q,
// dS/scale = P (dP - D)) given the full dots; nothing where the causal mask
// hides the key from the query.
void accumulate(uint ii, uint i, float ss[RK], float sp[RK]) {
    float pv[RK], ds[RK];
    for (uint r = 0; r < RK; r++) {
        bool seen = p.causal == 0 || kj[r] < i + p.causal;
        pv[r] = seen ? exp2(ss[r] - Ls[ii]) : 0.0;
        ds[r] = pv[r] * (sp[r] - Ds[ii]);
    }
    for (uint e = 0; e < DV; e++) {
        uint c = lane + LANES * e;
        if (c < DHV4) {
            vec4 gv = Gs[ii * DHV4 + c];
            for (uint r = 0; r < RK; r++) dv[r * DV + e] += pv[r] * gv;
        }
    }
    for (uint e = 0; e < DQ; e++) {
        uint c = lane + LANES * e;
        if (c < DH4) {
            vec4 qv = Qs[ii * DH4 + c];
            for (uint r = 0; r < RK; r++) dk[r * DQ + e] += ds[r] * qv;
        }
    }
}

void main() {
    uint g = linearGroup();
    if (g >= p.groups) return; // whole workgroup: the grid may overshoot
    uint kb = g % p.kblocks, bh = g / p.kblocks;
    uint b = bh / p.heads, h = bh % p.heads;
    uint tid = gl_LocalInvocationID.x;
    lane = tid % LANES;
    uint slot = tid / LANES;
    for (uint r = 0; r < RK; r++) {
        uint j = kb * BKV + slot + TK * r;
        kj[r] = j;
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
    // The first query that sees key j is j + 1 - causal (j - offset).
    uint istart = p.causal != 0 ? min(kb * BKV + 1 - min(kb * BKV + 1, p.causal), p.nq) : 0;
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
        uint in_ = min(p.nq - i0, BQ); // queries of this block that exist

        if (LANES == 1) {
            for (uint ii = 0; ii < in_; ii++) {
                float ss[RK], sp[RK];
                dots(ii, ss, sp);
                accumulate(ii, i0 + ii, ss, sp);
            }
        } else {
            for (uint ii = 0; ii < BQ; ii++) {
                float ss[RK], sp[RK];
                dots(ii, ss, sp);
                for (uint r = 0; r < RK; r++) {
                    part[(tid * RK + r) * PSTRIDE + ii] = ss[r];
                    part[(tid * RK + r) * PSTRIDE + BQ + ii] = sp[r];
                }
            }
            barrier();
            for (uint ii = 0; ii < BQ; ii++) {
                float ss[RK], sp[RK];
                for (uint r = 0; r < RK; r++) {
                    ss[r] = 0.0;
                    sp[r] = 0.0;
                    for (uint x = 0; x < LANES; x++) {
                        uint at = ((slot * LANES + x) * RK + r) * PSTRIDE + ii;
                        ss[r] += part[at];
                        sp[r] += part[at + BQ];
                    }
                }
                if (ii < in_) accumulate(ii, i0 + ii, ss, sp);
            }
        }
        barrier(); // Qs, Gs, Ls, Ds and part are rewritten by the next block
    }

    for (uint r = 0; r < RK; r++) {
        uint j = kj[r];
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
