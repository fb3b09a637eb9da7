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
RBUF(0, a)
RBUF(1, b)
RBUF(2, bias)
WBUF(3, c)
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
        float av = TRANS_A ? a_ld(baseA + k * p.M + r) : a_ld(baseA + r * p.K + k);
        for (uint j = 0; j < NC; j++) {
            float bv = TRANS_B ? b_ld(baseB + cols[j] * p.K + k) : b_ld(baseB + k * p.N + cols[j]);
            acc[j] += av * bv;
        }
    }
    uint baseC = gl_WorkGroupID.z * p.strideC + r * p.N;
    for (uint j = 0; j < nc; j++) {
        float v = acc[j];
        if (HAS_BIAS) v += bias_ld(c0 + j);
        c_st(baseC + c0 + j, v);
    }
}
