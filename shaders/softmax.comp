#version 450
#include "storage.glsl"
// softmax over the last dimension of x [rows, d]. TPR threads share a row
// (a power of two up to the workgroup size, picked from d so narrow rows do
// not leave most of a workgroup idle); each keeps an online max and sum over
// its strided elements, the row's partial results are merged through shared
// memory, and a second pass writes exp(x - max) / sum.
#include "common.glsl"
layout(local_size_x = 128) in;
layout(constant_id = 0) const uint TPR = 128; // threads per row
const uint WG = 128;
const uint RPW = WG / TPR; // rows per workgroup
RBUF(0, x)
WBUF(1, y)
layout(push_constant) uniform P { uint rows, d; } p;

shared float sm[WG];
shared float ss[WG];

const float NEG = -3.402823e38;

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint lane = tid % TPR;
    uint row = linearGroup() * RPW + tid / TPR;
    bool live = row < p.rows;
    uint base = row * p.d;

    float m = NEG, s = 0.0;
    if (live) {
        for (uint c = lane; c < p.d; c += TPR) {
            float v = x_ld(base + c);
            // One exponential per element: rescale the sum only when the
            // maximum moves.
            if (v > m) {
                s = s * exp(m - v) + 1.0;
                m = v;
            } else {
                s += exp(v - m);
            }
        }
    }
    sm[tid] = m;
    ss[tid] = s;
    barrier();
    for (uint w = TPR / 2; w > 0; w /= 2) {
        if (lane < w) {
            float m2 = sm[tid + w], s2 = ss[tid + w];
            float mm = max(m, m2);
            s = s * exp(m - mm) + s2 * exp(m2 - mm);
            m = mm;
            sm[tid] = m;
            ss[tid] = s;
        }
        barrier();
    }
    if (!live) return;
    float mx = sm[tid - lane];
    float inv = 1.0 / ss[tid - lane];
    for (uint c = lane; c < p.d; c += TPR) {
        y_st(base + c, exp(x_ld(base + c) - mx) * inv);
    }
}
