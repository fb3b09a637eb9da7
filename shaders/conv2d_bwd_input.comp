#version 450
// conv2d_bwd_input: the input gradient of conv2d (a transposed convolution)
// as an implicit GEMM, dx[c][pix] = sum_k W'[c][k] * DY'[k][pix], with
// neither the patch matrix nor a zero-inserted dy ever stored.
//
// With stride s, input row iy receives gradient from kernel row ky only when
// (iy + padTop - ky) is a multiple of s, so most (pixel, tap) pairs of a
// plain gather would be zeros (3/4 of them for SD's stride-2 downsamplers).
// Instead the input pixels are split into s_h*s_w phases by
// ((iy + padTop) % s_h, (ix + padLeft) % s_w); every pixel of a phase uses
// the same taps ky = ry + s_h*a, kx = rx + s_w*b, and for those the output
// position is exact: oy = oyBase + ty - a (ty is the pixel's row within the
// phase). Each phase is then a dense GEMM with K = O * taps(phase). A phase
// without taps (kernel smaller than the stride) still writes its zeros.
//
// A workgroup of 16x16 threads computes 64 input channels x 64 pixels of one
// phase of one image, 4x4 per thread, staging K-slices of depth 16 in shared
// memory like conv2d.comp.
//
// Grid: x,y = pixel tile within the phase (linear, split for the
// per-dimension limit; phases smaller than the largest exit early),
// z = (image * channel tiles + channel tile) * phases + phase.
#include "common.glsl"
layout(local_size_x = 16, local_size_y = 16) in;
// Kernel size and stride are specialization constants: the phase count and
// the tap decoding fold to constants, and stride 1 loses the phase logic.
layout(constant_id = 0) const uint KH = 3;
layout(constant_id = 1) const uint KW = 3;
layout(constant_id = 2) const uint SH = 1;
layout(constant_id = 3) const uint SW = 1;
layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer Wt { float w[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };
layout(push_constant) uniform P {
    uint C, H, W, O, HO, WO;
    uint padTop, padLeft;
    uint pixTiles, cTiles;
} p;

const uint BM = 64, BN = 64, BK = 16;
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

void main() {
    uint tile = linearGroup();
    if (tile >= p.pixTiles) return; // whole workgroup: the grid may overshoot
    uint z = gl_WorkGroupID.z;
    uint phase = z % (SH * SW);
    z /= SH * SW;
    uint img = z / p.cTiles;
    uint c0 = (z % p.cTiles) * BM;
    uint ry = phase / SW, rx = phase % SW;

    // The phase's first input row/column: (iy0 + padTop) % SH == ry.
    uint iy0 = (ry + SH - p.padTop % SH) % SH;
    uint ix0 = (rx + SW - p.padLeft % SW) % SW;
    uint hy = iy0 < p.H ? (p.H - iy0 + SH - 1) / SH : 0;
    uint wx = ix0 < p.W ? (p.W - ix0 + SW - 1) / SW : 0;
    uint P = hy * wx;
    uint p0 = tile * BN;
    if (p0 >= P) return; // whole workgroup: this phase has fewer tiles
    uint nky = ry < KH ? (KH - ry + SH - 1) / SH : 0;
    uint nkx = rx < KW ? (KW - rx + SW - 1) / SW : 0;
    uint taps = nky * nkx;
    uint K = p.O * taps;
    // iy0 + padTop - ry is a non-negative multiple of SH by construction.
    int oyBase = int((iy0 + p.padTop - ry) / SH);
    int oxBase = int((ix0 + p.padLeft - rx) / SW);

    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint tid = ty * 16 + tx;
    uint planeY = p.HO * p.WO;
    uint dyBase = img * p.O * planeY;

    // Each thread loads the same channel column of the weight tile and the
    // same pixel column of the gradient tile at every step (256 threads,
    // BM = BN = 64), so both are decoded once.
    uint myCol = tid % BM;
    uint myC = c0 + myCol;
    uint myPix = p0 + myCol;
    bool pixOK = myPix < P;
    int pty = pixOK ? int(myPix / wx) : 0;
    int ptx = pixOK ? int(myPix % wx) : 0;
    int oyPix = oyBase + pty, oxPix = oxBase + ptx;

    float acc[4][4];
    for (uint i = 0; i < 4; i++) for (uint j = 0; j < 4; j++) acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < K; k0 += BK) {
        for (uint e = 0; e < 4; e++) {
            uint kk = tid / BM + 4 * e;
            uint k = k0 + kk;
            float a = 0.0, bv = 0.0;
            if (k < K) {
                uint o = k / taps, t = k % taps;
                uint ta = t / nkx, tb = t % nkx;
                uint ky = ry + SH * ta, kx = rx + SW * tb;
                // Weight tile: consecutive threads walk input channels.
                if (myC < p.C) a = w[((o * p.C + myC) * KH + ky) * KW + kx];
                // Gradient tile: consecutive threads walk the phase's pixels,
                // contiguous along a row of dy for stride 1.
                int oy = oyPix - int(ta), ox = oxPix - int(tb);
                if (pixOK && oy >= 0 && oy < int(p.HO) && ox >= 0 && ox < int(p.WO)) {
                    bv = dy[dyBase + o * planeY + uint(oy) * p.WO + uint(ox)];
                }
            }
            As[kk][myCol] = a;
            Bs[kk][myCol] = bv;
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float av[4], bw[4];
            for (uint i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
            for (uint j = 0; j < 4; j++) bw[j] = Bs[kk][tx + 16 * j];
            for (uint i = 0; i < 4; i++) for (uint j = 0; j < 4; j++) acc[i][j] += av[i] * bw[j];
        }
        barrier();
    }
    uint plane = p.H * p.W;
    uint dxBase = img * p.C * plane;
    for (uint j = 0; j < 4; j++) {
        uint pix = p0 + tx + 16 * j;
        if (pix >= P) continue;
        uint iy = iy0 + SH * (pix / wx), ix = ix0 + SW * (pix % wx);
        for (uint i = 0; i < 4; i++) {
            uint c = c0 + ty + 16 * i;
            if (c < p.C) dx[dxBase + c * plane + iy * p.W + ix] = acc[i][j];
        }
    }
}
