// conv2d_cpu: the same convolution as conv2d.comp for CPU Vulkan devices
// (lavapipe). There a workgroup barrier is a coroutine switch per
// invocation, so this kernel has no shared memory and no barriers; and
// every storage-buffer load, uniform or not, is a loop over the SIMD lanes
// that costs far more than the arithmetic, so the kernel is built to issue
// as few loads per multiply-add as possible.
//
// A workgroup is one subgroup (one SIMD vector on lavapipe). Each
// invocation computes OC output channels of PX output pixels of one image;
// the subgroup shares the channels, so the weights are loaded
// cooperatively: lane l loads the weight of channel l (+ SG, 2 SG, ...) and
// subgroupBroadcast hands it to the others, one load per SG weights. The
// input values are the lanes' own, each reused for OC multiply-adds. Per
// input channel and tap that is OC/SG + PX loads for OC*PX multiply-adds
// per lane. SG is the device's subgroup size, which SPIR-V 1.5 shaders
// always run with.
//
// A tap's bounds test (padding, asymmetric allowed) depends on the pixel
// and the tap, not on the channel, so it is hoisted out of the channel
// loop: outside taps read a clamped in-image address and select zero.
// Loops have no data-dependent exits, so the accumulators stay in
// registers; lanes past the last pixel or channel compute clamped ones and
// store nothing. Kernel size, stride and bias are push constants: they only
// steer the loops around the channel loop, and lavapipe compiles every
// pipeline of a process anew (seconds for this one), so one
// pipeline per channel block serves every convolution.
//
// Grid: x,y = block of SG*PX output pixels (linear, split for the
// per-dimension limit), z = image * output-channel blocks.
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
layout(constant_id = 0) const uint OC = 32; // output channels per invocation, a multiple of SG
layout(constant_id = 1) const uint PX = 4; // output pixels per invocation
layout(constant_id = 2) const uint SG = 8; // the device's subgroup size
RBUF(0, x)
RBUF(1, w)
RBUF(2, bias)
WBUF(3, y)
layout(push_constant) uniform P {
    uint C, H, W, O, HO, WO;
    uint KH, KW, strideH, strideW, padTop, padLeft;
    uint hasBias, pixBlocks, oBlocks;
} p;

const uint NW = OC / SG; // cooperative weight loads per channel and tap

void main() {
    uint blk = linearGroup();
    if (blk >= p.pixBlocks) return; // whole workgroup: the grid may overshoot
    // The block's pixels are contiguous, and at every step the lanes read
    // neighbouring pixels.
    uint lane = gl_SubgroupInvocationID;
    uint base = blk * SG * PX;
    uint P = p.HO * p.WO;

    uint img = gl_WorkGroupID.z / p.oBlocks;
    uint o0 = (gl_WorkGroupID.z % p.oBlocks) * OC;
    uint plane = p.H * p.W;
    uint KK = p.KH * p.KW;
    uint K = p.C * KK;
    uint xBase = img * p.C * plane;

    uint pix[PX];
    int iy0[PX], ix0[PX];
    [[unroll]] for (uint q = 0; q < PX; q++) {
        pix[q] = base + q * SG + lane;
        uint pc = min(pix[q], P - 1);
        iy0[q] = int((pc / p.WO) * p.strideH) - int(p.padTop);
        ix0[q] = int((pc % p.WO) * p.strideW) - int(p.padLeft);
    }
    // The weight rows this lane loads for the subgroup (channels past O
    // repeat the last one).
    uint wRow[NW];
    [[unroll]] for (uint m = 0; m < NW; m++) wRow[m] = min(o0 + m * SG + lane, p.O - 1) * K;

    float acc[OC][PX];
    [[unroll]] for (uint j = 0; j < OC; j++) [[unroll]] for (uint q = 0; q < PX; q++) acc[j][q] = 0.0;

    for (uint ky = 0; ky < p.KH; ky++) {
        for (uint kx = 0; kx < p.KW; kx++) {
            uint xOff[PX];
            bool inside[PX];
            [[unroll]] for (uint q = 0; q < PX; q++) {
                int iy = iy0[q] + int(ky), ix = ix0[q] + int(kx);
                inside[q] = iy >= 0 && iy < int(p.H) && ix >= 0 && ix < int(p.W);
                xOff[q] = xBase + (inside[q] ? uint(iy) * p.W + uint(ix) : 0);
            }
            uint t = ky * p.KW + kx;
            for (uint c = 0; c < p.C; c++) {
                float v[PX];
                [[unroll]] for (uint q = 0; q < PX; q++) {
                    float xv = x_ld(xOff[q] + c * plane);
                    v[q] = inside[q] ? xv : 0.0;
                }
                uint k = c * KK + t;
                float wv[OC];
                [[unroll]] for (uint m = 0; m < NW; m++) {
                    float wl = w_ld(wRow[m] + k);
                    [[unroll]] for (uint i = 0; i < SG; i++) wv[m * SG + i] = subgroupBroadcast(wl, i);
                }
                [[unroll]] for (uint j = 0; j < OC; j++) {
                    [[unroll]] for (uint q = 0; q < PX; q++) acc[j][q] += wv[j] * v[q];
                }
            }
        }
    }
    uint yBase = img * p.O * P;
    [[unroll]] for (uint j = 0; j < OC; j++) {
        uint o = o0 + j;
        if (o < p.O) {
            float b0 = p.hasBias != 0 ? bias_ld(o) : 0.0;
            [[unroll]] for (uint q = 0; q < PX; q++) {
                if (pix[q] < P) y_st(yBase + o * P + pix[q], acc[j][q] + b0);
            }
        }
    }
}
