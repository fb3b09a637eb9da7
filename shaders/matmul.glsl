// matmul: C[batch] = op(A[batch]) * op(B[batch or shared]) (+ bias per
// column). Tiled for GPUs: a 64x64 output tile per workgroup of 16x16
// threads, each thread 4x4 outputs (strided by 16, so neighbours read
// neighbouring shared-memory words), A and B tiles of depth 16 staged in
// shared memory. Transposes and the bias are specialization constants.
// (A 128x128-tile variant with 8x8 outputs per thread ran 10x slower on an
// H100 at 4096^3, 1.7 against 20 TFLOP/s for this one at 1024^3, and was
// removed; see BENCHMARKS.md.)
const uint TM = 4;
layout(local_size_x = 16, local_size_y = 16) in;
layout(constant_id = 0) const bool TRANS_A = false;
layout(constant_id = 1) const bool TRANS_B = false;
layout(constant_id = 2) const bool HAS_BIAS = false;
RBUF(0, a)
RBUF(1, b)
RBUF(2, bias)
WBUF(3, c)
layout(push_constant) uniform P { uint M, N, K, strideA, strideB, strideC; } p;

const uint BM = 16 * TM, BN = 16 * TM, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

float loadA(uint base, uint r, uint k) {
    if (r >= p.M || k >= p.K) return 0.0;
    return TRANS_A ? a_ld(base + k * p.M + r) : a_ld(base + r * p.K + k);
}

float loadB(uint base, uint k, uint col) {
    if (k >= p.K || col >= p.N) return 0.0;
    return TRANS_B ? b_ld(base + col * p.K + k) : b_ld(base + k * p.N + col);
}

void main() {
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint tid = ty * 16 + tx;
    uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
    uint baseA = gl_WorkGroupID.z * p.strideA;
    uint baseB = gl_WorkGroupID.z * p.strideB;
    float acc[TM][TM];
    for (uint i = 0; i < TM; i++) for (uint j = 0; j < TM; j++) acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < p.K; k0 += BK) {
        for (uint e = 0; e < BM * BK / 256; e++) {
            uint idx = tid + e * 256;
            // Pick the thread->element mapping that reads memory contiguously.
            uint r, kk;
            if (TRANS_A) { r = idx % BM; kk = idx / BM; } else { kk = idx % BK; r = idx / BK; }
            As[kk][r] = loadA(baseA, row0 + r, k0 + kk);
            uint cc, kb;
            if (TRANS_B) { kb = idx % BK; cc = idx / BK; } else { cc = idx % BN; kb = idx / BN; }
            Bs[kb][cc] = loadB(baseB, k0 + kb, col0 + cc);
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float av[TM], bv[TM];
            for (uint i = 0; i < TM; i++) av[i] = As[kk][ty + 16 * i];
            for (uint j = 0; j < TM; j++) bv[j] = Bs[kk][tx + 16 * j];
            for (uint i = 0; i < TM; i++) for (uint j = 0; j < TM; j++) acc[i][j] += av[i] * bv[j];
        }
        barrier();
    }
    uint baseC = gl_WorkGroupID.z * p.strideC;
    for (uint i = 0; i < TM; i++) {
        uint r = row0 + ty + 16 * i;
        if (r >= p.M) continue;
        for (uint j = 0; j < TM; j++) {
            uint col = col0 + tx + 16 * j;
            if (col >= p.N) continue;
            float v = acc[i][j];
            if (HAS_BIAS) v += bias_ld(col);
            c_st(baseC + r * p.N + col, v);
        }
    }
}
