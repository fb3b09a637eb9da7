#version 450
// geglu: x [rows, 2f] -> y [rows, f] = hidden * gelu(gate), hidden being
// the first half of each row and gate the second (diffusers' GEGLU, exact
// GELU).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform P { uint n, f; } p; // n = rows * f

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint r = i / p.f, c = i % p.f;
    uint base = 2 * r * p.f + c;
    float h = x[base], g = x[base + p.f];
    y[i] = h * gelu_(g);
}
