// matmul_rows: the same product as matmul.comp without shared memory or
// barriers, for CPU Vulkan devices (lavapipe), where a workgroup barrier is
// a coroutine switch per invocation and shared-memory tiles cost more than
// they save. A workgroup of 64 invocations computes 8 rows x 256 columns:
// every invocation reads the same A elements (uniform loads, broadcast
// across SIMD lanes) and its own 4 columns of B.
layout(local_size_x = 64) in;
layout(constant_id = 0) const bool TRANS_A = false;
layout(constant_id = 1) const bool TRANS_B = false;
layout(constant_id = 2) const bool HAS_BIAS = false;
RBUF(0, a)
RBUF(1, b)
RBUF(2, bias)
WBUF(3, c)
layout(push_constant) uniform P { uint M, N, K, strideA, strideB, strideC; } p;

const uint ROWS = 8, COLS = 4;

void main() {
    uint row0 = gl_WorkGroupID.y * ROWS;
    uint col0 = (gl_WorkGroupID.x * 64 + gl_LocalInvocationID.x) * COLS;
    uint baseA = gl_WorkGroupID.z * p.strideA;
    uint baseB = gl_WorkGroupID.z * p.strideB;
    uint nr = min(ROWS, p.M - row0);
    float acc[ROWS][COLS];
    for (uint i = 0; i < ROWS; i++) for (uint j = 0; j < COLS; j++) acc[i][j] = 0.0;
    // Rows and columns past the edges read the last valid one and are
    // never stored: no data-dependent exits, so the loops unroll and the
    // accumulators stay in registers.
    uint cols[COLS], rows[ROWS];
    bool ok[COLS];
    for (uint j = 0; j < COLS; j++) { ok[j] = col0 + j < p.N; cols[j] = min(col0 + j, p.N - 1); }
    for (uint i = 0; i < ROWS; i++) rows[i] = min(row0 + i, p.M - 1);
    for (uint k = 0; k < p.K; k++) {
        float bv[COLS];
        for (uint j = 0; j < COLS; j++)
            bv[j] = TRANS_B ? b_ld(baseB + cols[j] * p.K + k) : b_ld(baseB + k * p.N + cols[j]);
        for (uint i = 0; i < ROWS; i++) {
            float av = TRANS_A ? a_ld(baseA + k * p.M + rows[i]) : a_ld(baseA + rows[i] * p.K + k);
            for (uint j = 0; j < COLS; j++) acc[i][j] += av * bv[j];
        }
    }
    uint baseC = gl_WorkGroupID.z * p.strideC;
    for (uint i = 0; i < nr; i++) {
        for (uint j = 0; j < COLS; j++) {
            if (!ok[j]) continue;
            float v = acc[i][j];
            if (HAS_BIAS) v += bias_ld(cols[j]);
            c_st(baseC + (row0 + i) * p.N + cols[j], v);
        }
    }
}
