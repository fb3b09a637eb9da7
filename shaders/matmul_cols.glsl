// matmul_cols: the same product as matmul.comp for CPU Vulkan devices when
// C is narrow (few columns, many rows, like the Linear layers of small
// models): each invocation owns one row and a block of NC columns, so every
// B element is the same for all invocations (a uniform load broadcast to
// the SIMD lanes) and the only per-lane loads are A's. No shared memory,
// no barriers (matmul_rows.comp is the wide-C counterpart).
layout(local_size_x = 64) in;
layout(constant_id = 0) const bool TRANS_A = false;
layout(constant_id = 1) const bool TRANS_B = false;
layout(constant_id = 2) const bool HAS_BIAS = false;
layout(constant_id = 3) const uint NC = 16;
#include "weight.glsl"
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { WTYPE b[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer C { float c[]; };
layout(push_constant) uniform P { uint M, N, K, strideA, strideB, strideC; } p;

void main() {
    uint r = gl_WorkGroupID.y * 64 + gl_LocalInvocationID.x;
    if (r >= p.M) return;
    uint c0 = gl_WorkGroupID.x * NC;
    uint nc = min(NC, p.N - c0);
    uint baseA = gl_WorkGroupID.z * p.strideA;
    uint baseB = gl_WorkGroupID.z * p.strideB;
    // Columns past N read the last column and are never stored: no
    // data-dependent exits, so the compiler unrolls the NC loop and keeps
    // acc in registers.
    uint cols[NC];
    for (uint j = 0; j < NC; j++) cols[j] = min(c0 + j, p.N - 1);
    float acc[NC];
    for (uint j = 0; j < NC; j++) acc[j] = 0.0;
    for (uint k = 0; k < p.K; k++) {
        float av = TRANS_A ? a[baseA + k * p.M + r] : a[baseA + r * p.K + k];
        for (uint j = 0; j < NC; j++) {
            float bv = TRANS_B ? float(b[baseB + cols[j] * p.K + k]) : float(b[baseB + k * p.N + cols[j]]);
            acc[j] += av * bv;
        }
    }
    uint baseC = gl_WorkGroupID.z * p.strideC + r * p.N;
    for (uint j = 0; j < nc; j++) {
        float v = acc[j];
        if (HAS_BIAS) v += bias[c0 + j];
        c[baseC + c0 + j] = v;
    }
}
