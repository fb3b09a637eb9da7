#version 450
#include "storage.glsl"
// attention_cpu: the same attention as attention.comp for CPU Vulkan
// devices (lavapipe), built like conv2d_cpu.glsl: no shared memory, no
// barriers. On lavapipe a barrier is a coroutine switch per invocation and
// every shared or storage load, uniform or not, is a loop over the SIMD
// lanes, so attention.comp's per-key shared loads of K and V (one per vec4
// of a head, for every key) cost more than its arithmetic. Picked by
// graph/record_attention.go attnCPUFor for heads up to 96 (q plus v dims):
// lavapipe compiles larger ones too slowly, which keep attention.comp.
//
// A workgroup is one subgroup (one SIMD vector on lavapipe) and owns SG*RQ
// queries of one (batch, head): lane l holds queries q0 + l + SG*r. Keys
// are walked in blocks of SG: for each element d of a head, lane l loads
// element d of key j0 + l and subgroupBroadcast hands it to the others, so
// a block costs DH + DHV loads per lane for SG*RQ*(DH + DHV) multiply-adds.
// Only one element of K or V is live at a time; a lane holds its queries,
// their outputs and one block of scores.
//
// Online softmax in fp32 and in the log2 domain (q pre-scaled by
// scale*log2(e)), the running max moving once per block of SG keys. Keys a
// query does not see (causal mask, past nk) are skipped explicitly, never
// through infinities. Loops over a lane's queries, a head's elements and a
// block's keys carry [[unroll]] so the per-lane arrays are indexed with
// constants and stay out of lavapipe's slow indexed memory; the key-block
// loop stays a loop. Lanes past the last query compute a clamped one and
// store nothing; lanes past the last key load a clamped one.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#include "common.glsl"
layout(local_size_x_id = 0) in;            // one subgroup per workgroup
layout(constant_id = 0) const uint SG = 8; // the device's subgroup size
layout(constant_id = 1) const uint DH = 16;  // q/k head dim
layout(constant_id = 2) const uint DHV = 16; // v head dim
layout(constant_id = 3) const uint RQ = 1;   // queries per lane

RBUF(0, q)
RBUF(1, k)
RBUF(2, v)
WBUF(3, o)
layout(push_constant) uniform P {
    uint nq, nk, heads;
    uint qblocks; // ceil(nq / (SG*RQ))
    uint groups;  // qblocks * batch * heads
    uint causal;  // 0: no mask; else query i sees keys j < i + causal (1 + the offset)
    float scale;  // softmax scale times log2(e)
} p;

// The most negative float stands in for "no key seen yet"; exp2 of its
// difference with any real score is exactly 0.
const float NEG = -3.402823e38;

void main() {
    uint g = linearGroup();
    if (g >= p.groups) return; // whole workgroup: the grid may overshoot
    uint qb = g % p.qblocks, bh = g / p.qblocks;
    uint b = bh / p.heads, h = bh % p.heads;
    uint lane = gl_SubgroupInvocationID;
    uint q0 = qb * SG * RQ;

    float qr[RQ * DH];
    float acc[RQ * DHV];
    float m[RQ], l[RQ];
    uint jlim[RQ]; // keys query r sees: j < jlim[r]
    [[unroll]] for (uint r = 0; r < RQ; r++) {
        uint i = q0 + SG * r + lane;
        uint base = ((b * p.nq + min(i, p.nq - 1)) * p.heads + h) * DH;
        [[unroll]] for (uint d = 0; d < DH; d++) qr[r * DH + d] = q_ld(base + d) * p.scale;
        [[unroll]] for (uint d = 0; d < DHV; d++) acc[r * DHV + d] = 0.0;
        m[r] = NEG;
        l[r] = 0.0;
        jlim[r] = p.causal == 0 ? p.nk : min(p.nk, i + p.causal);
    }

    // With the causal mask no query of this block sees keys past its last's.
    uint kend = p.causal != 0 ? min(p.nk, min(q0 + SG * RQ, p.nq) - 1 + p.causal) : p.nk;
    uint kstride = p.heads * DH, vstride = p.heads * DHV;
    [[dont_unroll]] for (uint j0 = 0; j0 < kend; j0 += SG) {
        uint j = min(j0 + lane, p.nk - 1); // the key this lane loads
        uint kbase = (b * p.nk + j) * kstride + h * DH;
        uint vbase = (b * p.nk + j) * vstride + h * DHV;

        float s[RQ * SG];
        [[unroll]] for (uint x = 0; x < RQ * SG; x++) s[x] = 0.0;
        [[unroll]] for (uint d = 0; d < DH; d++) {
            float kl = k_ld(kbase + d);
            [[unroll]] for (uint jj = 0; jj < SG; jj++) {
                float kv = subgroupBroadcast(kl, jj);
                [[unroll]] for (uint r = 0; r < RQ; r++) s[r * SG + jj] += qr[r * DH + d] * kv;
            }
        }
        // Rescale what was accumulated to the block's new maximum and turn
        // its scores into weights (0 for keys not seen).
        [[unroll]] for (uint r = 0; r < RQ; r++) {
            float bm = NEG;
            [[unroll]] for (uint jj = 0; jj < SG; jj++) {
                if (j0 + jj < jlim[r]) bm = max(bm, s[r * SG + jj]);
            }
            float mn = max(m[r], bm);
            float alpha = exp2(m[r] - mn);
            m[r] = mn;
            float sum = 0.0;
            [[unroll]] for (uint jj = 0; jj < SG; jj++) {
                float pj = j0 + jj < jlim[r] ? exp2(s[r * SG + jj] - mn) : 0.0;
                s[r * SG + jj] = pj;
                sum += pj;
            }
            l[r] = l[r] * alpha + sum;
            [[unroll]] for (uint d = 0; d < DHV; d++) acc[r * DHV + d] *= alpha;
        }
        [[unroll]] for (uint d = 0; d < DHV; d++) {
            float vl = v_ld(vbase + d);
            [[unroll]] for (uint jj = 0; jj < SG; jj++) {
                float vv = subgroupBroadcast(vl, jj);
                [[unroll]] for (uint r = 0; r < RQ; r++) acc[r * DHV + d] += s[r * SG + jj] * vv;
            }
        }
    }

    [[unroll]] for (uint r = 0; r < RQ; r++) {
        uint i = q0 + SG * r + lane;
        if (i >= p.nq) continue;
        float inv = l[r] > 0.0 ? 1.0 / l[r] : 0.0;
        uint base = ((b * p.nq + i) * p.heads + h) * DHV;
        [[unroll]] for (uint d = 0; d < DHV; d++) o_st(base + d, acc[r * DHV + d] * inv);
    }
}
