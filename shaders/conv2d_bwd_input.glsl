// conv2d_bwd_input: the input gradient of conv2d (a transposed convolution)
// as an implicit GEMM, dx[c][pix] = sum_k W'[c][k] * DY'[k][pix], with
// neither the patch matrix nor a zero-inserted dy ever stored.
//
// With stride s, input row iy receives gradient from kernel row ky only when
// (iy + padTop - ky) is a multiple of s, so most (pixel, tap) pairs of a
// plain gather would be zeros (3/4 of them for SD's stride-2 downsamplers).
// Instead the input pixels are split into s_h*s_w phases by
// ((iy + padTop) % s_h, (ix + padLeft) % s_w): every pixel of a phase uses
// the same taps ky = ry + s_h*a, kx = rx + s_w*b, and for those the output
// position is exact, oy = oyBase + ty - a (ty: the pixel's row within the
// phase). Each phase is then a dense GEMM over K = taps x O, walked tap by
// tap in slices of BK output channels, so no index is ever divided. A phase
// without taps (kernel smaller than the stride) still writes its zeros.
//
// A workgroup of 16x16 threads computes 64 input channels x 64 pixels of one
// phase of one image, 4x4 per thread, staging K-slices in shared memory like
// conv2d.comp. Kernel size and stride are push constants: the loops are
// the same for every shape, so one pipeline serves every convolution.
//
// Grid: x,y = pixel tile within the phase (linear, split for the
// per-dimension limit; phases smaller than the largest exit early),
// z = (image * channel tiles + channel tile) * phases + phase.
#include "common.glsl"
layout(local_size_x = 16, local_size_y = 16) in;
RBUF(0, dy)
RBUF(1, w)
WBUF(2, dx)
layout(push_constant) uniform P {
    uint C, H, W, O, HO, WO;
    uint KH, KW, SH, SW;
    uint padTop, padLeft;
    uint pixTiles, cTiles;
} p;

const uint BM = 64, BN = 64, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

void main() {
    uint tile = linearGroup();
    if (tile >= p.pixTiles) return; // whole workgroup: the grid may overshoot
    uint phases = p.SH * p.SW;
    uint z = gl_WorkGroupID.z;
    uint phase = z % phases;
    z /= phases;
    uint img = z / p.cTiles;
    uint c0 = (z % p.cTiles) * BM;
    uint ry = phase / p.SW, rx = phase % p.SW;

    // The phase's first input row/column: (iy0 + padTop) % SH == ry.
    uint iy0 = (ry + p.SH - p.padTop % p.SH) % p.SH;
    uint ix0 = (rx + p.SW - p.padLeft % p.SW) % p.SW;
    uint hy = iy0 < p.H ? (p.H - iy0 + p.SH - 1) / p.SH : 0;
    uint wx = ix0 < p.W ? (p.W - ix0 + p.SW - 1) / p.SW : 0;
    uint P = hy * wx;
    uint p0 = tile * BN;
    if (p0 >= P) return; // whole workgroup: this phase has fewer tiles
    uint nky = ry < p.KH ? (p.KH - ry + p.SH - 1) / p.SH : 0;
    uint nkx = rx < p.KW ? (p.KW - rx + p.SW - 1) / p.SW : 0;
    // iy0 + padTop - ry is a non-negative multiple of SH by construction.
    int oyBase = int((iy0 + p.padTop - ry) / p.SH);
    int oxBase = int((ix0 + p.padLeft - rx) / p.SW);

    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint tid = ty * 16 + tx;
    uint planeY = p.HO * p.WO;
    uint dyBase = img * p.O * planeY;
    uint wStride = p.C * p.KH * p.KW; // between output channels of w

    // Each thread loads the same channel column of the weight tile and the
    // same pixel column of the gradient tile at every step (256 threads,
    // BM = BN = 64), and output channels o0 + tid/64 + 4e.
    uint myCol = tid % BM;
    uint myC = c0 + myCol;
    uint myPix = p0 + myCol;
    bool pixOK = myPix < P;
    int oyPix = oyBase + (pixOK ? int(myPix / wx) : 0);
    int oxPix = oxBase + (pixOK ? int(myPix % wx) : 0);
    uint kRow = tid / BM;

    float acc[4][4];
    for (uint i = 0; i < 4; i++) for (uint j = 0; j < 4; j++) acc[i][j] = 0.0;

    for (uint ta = 0; ta < nky; ta++) {
        for (uint tb = 0; tb < nkx; tb++) {
            uint ky = ry + p.SH * ta, kx = rx + p.SW * tb;
            int oy = oyPix - int(ta), ox = oxPix - int(tb);
            bool dyOK = pixOK && oy >= 0 && oy < int(p.HO) && ox >= 0 && ox < int(p.WO);
            uint dyAt = dyBase + (dyOK ? uint(oy) * p.WO + uint(ox) : 0);
            uint wAt = (myC * p.KH + ky) * p.KW + kx;
            for (uint o0 = 0; o0 < p.O; o0 += BK) {
                for (uint e = 0; e < 4; e++) {
                    uint kk = kRow + 4 * e;
                    uint o = o0 + kk;
                    // Weight tile: consecutive threads walk input channels.
                    As[kk][myCol] = (o < p.O && myC < p.C) ? w_ld(o * wStride + wAt) : 0.0;
                    // Gradient tile: consecutive threads walk the phase's
                    // pixels, contiguous along a row of dy for stride 1.
                    Bs[kk][myCol] = (o < p.O && dyOK) ? dy_ld(dyAt + o * planeY) : 0.0;
                }
                barrier();
                for (uint kk = 0; kk < BK; kk++) {
                    float av[4], bv[4];
                    for (uint i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
                    for (uint j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
                    for (uint i = 0; i < 4; i++) for (uint j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
                }
                barrier();
            }
        }
    }
    uint plane = p.H * p.W;
    uint dxBase = img * p.C * plane;
    for (uint j = 0; j < 4; j++) {
        uint pix = p0 + tx + 16 * j;
        if (pix >= P) continue;
        uint iy = iy0 + p.SH * (pix / wx), ix = ix0 + p.SW * (pix % wx);
        for (uint i = 0; i < 4; i++) {
            uint c = c0 + ty + 16 * i;
            if (c < p.C) dx_st(dxBase + c * plane + iy * p.W + ix, acc[i][j]);
        }
    }
}
