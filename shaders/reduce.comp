#version 450
#include "storage.glsl"
// reduce: sum (or mean) over the middle axis of [outer, axis, inner].
// Two strategies, chosen by a specialization constant:
//  TREE: one workgroup per output, 256 invocations stride over the axis
//        and a shared-memory tree combines them (few outputs, long axes);
//  otherwise one invocation per output walks the axis serially: no
//        barriers, coalesced reads along inner (many outputs; on CPU Vulkan
//        a barrier costs a coroutine switch per invocation).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const bool TREE = true;
RBUF(0, x)
WBUF(1, o)
layout(push_constant) uniform P { uint outer, axis, inner, mean; } p;
shared float part[256];

void main() {
    if (!TREE) {
        uint out_ = linearGroup() * 256 + gl_LocalInvocationID.x;
        if (out_ >= p.outer * p.inner) return;
        uint oi = out_ / p.inner, ii = out_ % p.inner;
        uint base = oi * p.axis * p.inner + ii;
        // Pairs of partial sums keep the rounding error closer to a tree's.
        float s0 = 0.0, s1 = 0.0;
        uint a = 0;
        for (; a + 1 < p.axis; a += 2) {
            s0 += x_ld(base + a * p.inner);
            s1 += x_ld(base + (a + 1) * p.inner);
        }
        if (a < p.axis) s0 += x_ld(base + a * p.inner);
        float s = s0 + s1;
        o_st(out_, p.mean != 0u ? s / float(p.axis) : s);
        return;
    }
    uint out_ = linearGroup();
    if (out_ >= p.outer * p.inner) return; // whole workgroup returns together
    uint oi = out_ / p.inner, ii = out_ % p.inner;
    uint base = oi * p.axis * p.inner + ii;
    float s = 0.0;
    for (uint a = gl_LocalInvocationID.x; a < p.axis; a += 256) s += x_ld(base + a * p.inner);
    part[gl_LocalInvocationID.x] = s;
    barrier();
    for (uint w = 128; w > 0; w >>= 1) {
        if (gl_LocalInvocationID.x < w) part[gl_LocalInvocationID.x] += part[gl_LocalInvocationID.x + w];
        barrier();
    }
    if (gl_LocalInvocationID.x == 0) o_st(out_, p.mean != 0u ? part[0] / float(p.axis) : part[0]);
}
