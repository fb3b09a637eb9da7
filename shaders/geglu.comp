#version 450
#include "storage.glsl"
// geglu: x [rows, 2f] -> y [rows, f] = hidden * gelu(gate), hidden being
// the first half of each row and gate the second (diffusers' GEGLU, exact
// GELU).
#include "common.glsl"
layout(local_size_x = 256) in;
RBUF(0, x)
WBUF(1, y)
layout(push_constant) uniform P { uint n, f; } p; // n = rows * f

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint r = i / p.f, c = i % p.f;
    uint base = 2 * r * p.f + c;
    float h = x_ld(base), g = x_ld(base + p.f);
    y_st(i, h * gelu_(g));
}
