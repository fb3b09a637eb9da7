#version 450
// reduce: sum (or mean) over the middle axis of [outer, axis, inner]. One
// workgroup per output element; 256 threads stride over the axis and a
// shared-memory tree combines them (fp32 accumulation, pairwise order,
// which also keeps the rounding error small on long axes).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint outer, axis, inner, mean; } p;
shared float part[256];

void main() {
    uint out_ = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (out_ >= p.outer * p.inner) return; // whole workgroup returns together
    uint oi = out_ / p.inner, ii = out_ % p.inner;
    uint base = oi * p.axis * p.inner + ii;
    float s = 0.0;
    for (uint a = gl_LocalInvocationID.x; a < p.axis; a += 256) s += x[base + a * p.inner];
    part[gl_LocalInvocationID.x] = s;
    barrier();
    for (uint w = 128; w > 0; w >>= 1) {
        if (gl_LocalInvocationID.x < w) part[gl_LocalInvocationID.x] += part[gl_LocalInvocationID.x + w];
        barrier();
    }
    if (gl_LocalInvocationID.x == 0) o[out_] = p.mean != 0u ? part[0] / float(p.axis) : part[0];
}
