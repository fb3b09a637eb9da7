// conv2d_bwd_input_cpu: the same input gradient as conv2d_bwd_input.comp
// for CPU Vulkan devices (lavapipe), built like conv2d_cpu.comp: no shared
// memory, no barriers, as few loads per multiply-add as possible, since on
// lavapipe every storage-buffer load is a loop over the SIMD lanes.
//
// The input pixels are split into stride phases as in
// conv2d_bwd_input.comp: all pixels of phase (ry, rx) take gradient from
// the same taps ky = ry + SH*a, kx = rx + SW*b, at output position
// (oyBase + ty - a, oxBase + tx - b) for the pixel (ty, tx) of the phase,
// so no (pixel, tap) pair that the stride leaves out is ever visited. A
// phase without taps (kernel smaller than the stride) writes its zeros.
//
// A workgroup is one subgroup. Each invocation computes CB input channels
// of PX pixels of one phase of one image, looping over the phase's taps
// and, innermost, the output channels. The subgroup shares the input
// channels, so lane l loads the weight of channel l (+ SG, ...) and
// subgroupBroadcast hands it to the others; the gradient values are the
// lanes' own, each reused for CB multiply-adds: CB/SG + PX loads for CB*PX
// multiply-adds per lane. Outside taps read a clamped address and select
// zero; lanes past the last pixel or channel compute clamped ones and
// store nothing. Kernel size and stride are push constants, as in
// conv2d_cpu.comp.
//
// Grid: x,y = block of SG*PX pixels of a phase (linear, split for the
// per-dimension limit; phases smaller than the largest exit early),
// z = (image * channel blocks + channel block) * phases + phase.
//
// The loops over the invocation's block carry [[unroll]]: NIR otherwise
// stops unrolling once a body passes its size limit, the accumulators are
// then indexed dynamically and live in memory, which is what kept blocks
// above 32 x 4 from paying off (graph/record_convnorm.go convCPUFor).
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#include "common.glsl"
layout(local_size_x_id = 2) in; // one subgroup per workgroup
layout(constant_id = 0) const uint CB = 32; // input channels per invocation, a multiple of SG
layout(constant_id = 1) const uint PX = 4; // input pixels per invocation
layout(constant_id = 2) const uint SG = 8; // the device's subgroup size
RBUF(0, dy)
RBUF(1, w)
WBUF(2, dx)
layout(push_constant) uniform P {
    uint C, H, W, O, HO, WO;
    uint KH, KW, SH, SW, padTop, padLeft;
    uint pixBlocks, cBlocks;
} p;

const uint NW = CB / SG; // cooperative weight loads per output channel and tap

void main() {
    uint blk = linearGroup();
    if (blk >= p.pixBlocks) return; // whole workgroup: the grid may overshoot
    uint z = gl_WorkGroupID.z;
    uint phase = z % (p.SH * p.SW);
    z /= p.SH * p.SW;
    uint img = z / p.cBlocks;
    uint c0 = (z % p.cBlocks) * CB;
    uint ry = phase / p.SW, rx = phase % p.SW;

    // The phase's first input row/column: (iy0 + padTop) % SH == ry.
    uint iy0 = (ry + p.SH - p.padTop % p.SH) % p.SH;
    uint ix0 = (rx + p.SW - p.padLeft % p.SW) % p.SW;
    uint hy = iy0 < p.H ? (p.H - iy0 + p.SH - 1) / p.SH : 0;
    uint wx = ix0 < p.W ? (p.W - ix0 + p.SW - 1) / p.SW : 0;
    uint P = hy * wx;
    uint lane = gl_SubgroupInvocationID;
    uint base = blk * SG * PX;
    if (base >= P) return; // the whole workgroup: this phase has fewer pixels
    uint nky = ry < p.KH ? (p.KH - ry + p.SH - 1) / p.SH : 0;
    uint nkx = rx < p.KW ? (p.KW - rx + p.SW - 1) / p.SW : 0;
    // iy0 + padTop - ry is a non-negative multiple of SH by construction.
    int oyBase = int((iy0 + p.padTop - ry) / p.SH);
    int oxBase = int((ix0 + p.padLeft - rx) / p.SW);

    uint planeY = p.HO * p.WO;
    uint dyBase = img * p.O * planeY;
    uint pix[PX];
    int oy0[PX], ox0[PX];
    [[unroll]] for (uint q = 0; q < PX; q++) {
        pix[q] = base + q * SG + lane;
        uint pc = min(pix[q], P - 1);
        oy0[q] = oyBase + int(pc / wx);
        ox0[q] = oxBase + int(pc % wx);
    }
    // The weight channels this lane loads for the subgroup (channels past C
    // repeat the last one).
    uint wCh[NW];
    [[unroll]] for (uint m = 0; m < NW; m++) wCh[m] = min(c0 + m * SG + lane, p.C - 1) * p.KH * p.KW;
    uint wStride = p.C * p.KH * p.KW; // from one output channel's weights to the next

    float acc[CB][PX];
    [[unroll]] for (uint j = 0; j < CB; j++) [[unroll]] for (uint q = 0; q < PX; q++) acc[j][q] = 0.0;

    for (uint a = 0; a < nky; a++) {
        for (uint b = 0; b < nkx; b++) {
            uint dyOff[PX];
            bool inside[PX];
            [[unroll]] for (uint q = 0; q < PX; q++) {
                int oy = oy0[q] - int(a), ox = ox0[q] - int(b);
                inside[q] = oy >= 0 && oy < int(p.HO) && ox >= 0 && ox < int(p.WO);
                dyOff[q] = dyBase + (inside[q] ? uint(oy) * p.WO + uint(ox) : 0);
            }
            uint t = (ry + p.SH * a) * p.KW + rx + p.SW * b;
            for (uint o = 0; o < p.O; o++) {
                float v[PX];
                [[unroll]] for (uint q = 0; q < PX; q++) {
                    float g = dy_ld(dyOff[q] + o * planeY);
                    v[q] = inside[q] ? g : 0.0;
                }
                uint k = o * wStride + t;
                float wv[CB];
                [[unroll]] for (uint m = 0; m < NW; m++) {
                    float wl = w_ld(wCh[m] + k);
                    [[unroll]] for (uint i = 0; i < SG; i++) wv[m * SG + i] = subgroupBroadcast(wl, i);
                }
                [[unroll]] for (uint j = 0; j < CB; j++) {
                    [[unroll]] for (uint q = 0; q < PX; q++) acc[j][q] += wv[j] * v[q];
                }
            }
        }
    }
    uint plane = p.H * p.W;
    uint dxBase = img * p.C * plane;
    uint dxOff[PX];
    [[unroll]] for (uint q = 0; q < PX; q++) {
        uint pc = min(pix[q], P - 1);
        dxOff[q] = dxBase + (iy0 + p.SH * (pc / wx)) * p.W + ix0 + p.SW * (pc % wx);
    }
    [[unroll]] for (uint j = 0; j < CB; j++) {
        uint c = c0 + j;
        if (c < p.C) {
            [[unroll]] for (uint q = 0; q < PX; q++) {
                if (pix[q] < P) dx_st(dxOff[q] + c * plane, acc[j][q]);
            }
        }
    }
}
