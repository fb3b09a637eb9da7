// embedding: out[r, :] = table[ids[r], :]. ids are whole numbers stored as
// float; an id outside the table (or not whole) yields a row of NaN so that
// a bad id can never pass silently.
#include "common.glsl"
layout(local_size_x = 256) in;
#include "weight.glsl"
layout(std430, binding = 0) readonly buffer T { WTYPE table[]; };
layout(std430, binding = 1) readonly buffer I { float ids[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(push_constant) uniform P { uint total, vocab, d; } p;

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.total) return;
    uint r = i / p.d, c = i % p.d;
    float id = ids[r];
    if (id < 0.0 || id >= float(p.vocab) || id != floor(id)) {
        o[i] = uintBitsToFloat(0x7fc00000u);
        return;
    }
    o[i] = float(table[uint(id) * p.d + c]);
}
