// conv2d as an implicit GEMM: per image, Y[o][p] = sum_k W[o][k] * X'[k][p]
// with o the output channel, p = oy*WO+ox the output pixel and
// k = (c*KH+ky)*KW+kx. The weight [O,C,KH,KW] already is W[O][K]; the
// patch matrix X' is never stored: its tile is gathered from x on the fly,
// zero outside the image (padding, asymmetric allowed). A workgroup of 16x16
// threads computes a BM channels x 64 pixels tile, TM x 4 per thread,
// staging K-slices of depth 16 in shared memory like matmul.comp.
//
// Grid: x,y = output-pixel tile (linear, split for the per-dimension limit),
// z = image * out-channel tiles.
#include "common.glsl"
layout(local_size_x = 16, local_size_y = 16) in;
// The kernel size is a specialization constant so the k -> (c,ky,kx)
// divisions become multiplies and the 1x1 case loses them entirely.
layout(constant_id = 0) const uint KH = 3;
layout(constant_id = 1) const uint KW = 3;
layout(constant_id = 2) const bool HAS_BIAS = false;
// Output channels per invocation: 4, or 2 and 1 for convolutions with few
// output channels (conv_out has 3 or 4), which would otherwise compute a
// 64-channel tile to keep a handful.
layout(constant_id = 3) const uint TM = 4;
RBUF(0, x)
RBUF(1, w)
RBUF(2, bias)
WBUF(3, y)
layout(push_constant) uniform P {
    uint C, H, W, O, HO, WO;
    uint strideH, strideW, padTop, padLeft;
    uint pixTiles, oTiles;
} p;

const uint BM = 16 * TM, BN = 64, BK = 16;
shared float As[BK][64 + 1]; // sized for TM = 4
shared float Bs[BK][BN + 1];

void main() {
    uint tile = linearGroup();
    if (tile >= p.pixTiles) return; // whole workgroup: the grid may overshoot
    uint img = gl_WorkGroupID.z / p.oTiles;
    uint o0 = (gl_WorkGroupID.z % p.oTiles) * BM;
    uint p0 = tile * BN;
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint tid = ty * 16 + tx;
    uint K = p.C * KH * KW;
    uint P = p.HO * p.WO;
    uint plane = p.H * p.W;
    uint xBase = img * p.C * plane;

    // Every thread gathers the same output pixel for all its patch loads
    // (idx % BN is fixed because 256 is a multiple of BN): decode it once.
    uint myPix = p0 + tid % BN;
    bool pixOK = myPix < P;
    uint oy = pixOK ? myPix / p.WO : 0;
    uint ox = pixOK ? myPix % p.WO : 0;
    int iy0 = int(oy * p.strideH) - int(p.padTop);
    int ix0 = int(ox * p.strideW) - int(p.padLeft);

    float acc[4][4];
    for (uint i = 0; i < 4; i++) for (uint j = 0; j < 4; j++) acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < K; k0 += BK) {
        for (uint e = 0; e < TM; e++) {
            uint idx = tid + e * 256;
            // Weight tile: consecutive threads walk k, which is contiguous.
            uint kk = idx % BK, r = idx / BK;
            uint o = o0 + r, k = k0 + kk;
            As[kk][r] = (o < p.O && k < K) ? w_ld(o * K + k) : 0.0;
        }
        for (uint e = 0; e < 4; e++) {
            uint idx = tid + e * 256;
            // Patch tile: consecutive threads walk pixels, so for stride 1
            // the loads are contiguous along a row of x.
            uint kb = idx / BN, cc = idx % BN;
            uint kg = k0 + kb;
            float v = 0.0;
            if (pixOK && kg < K) {
                uint c = kg / (KH * KW);
                uint rem = kg % (KH * KW);
                int iy = iy0 + int(rem / KW);
                int ix = ix0 + int(rem % KW);
                if (iy >= 0 && iy < int(p.H) && ix >= 0 && ix < int(p.W)) {
                    v = x_ld(xBase + c * plane + uint(iy) * p.W + uint(ix));
                }
            }
            Bs[kb][cc] = v;
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float av[4], bv[4];
            for (uint i = 0; i < TM; i++) av[i] = As[kk][ty + 16 * i];
            for (uint j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
            for (uint i = 0; i < TM; i++) for (uint j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
        barrier();
    }
    uint yBase = img * p.O * P;
    for (uint i = 0; i < TM; i++) {
        uint o = o0 + ty + 16 * i;
        if (o >= p.O) continue;
        float b0 = HAS_BIAS ? bias_ld(o) : 0.0;
        for (uint j = 0; j < 4; j++) {
            uint pix = p0 + tx + 16 * j;
            if (pix >= P) continue;
            y_st(yBase + o * P + pix, acc[i][j] + b0);
        }
    }
}
