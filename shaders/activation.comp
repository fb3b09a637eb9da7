#version 450
#include "storage.glsl"
// activation: y = f(x) elementwise. f is a specialization constant so each
// activation compiles to its own branch-free pipeline.
#include "common.glsl"
layout(local_size_x = 256) in;
// 0 silu, 1 gelu(erf), 2 gelu(tanh), 3 quick_gelu, 4 leaky_relu, 5 scale,
// 6 sqrt, 7 rsqrt, 8 exp, and the derivatives f'(x) of 0-4 as 9-13 (the
// backward pass multiplies them by the incoming gradient).
layout(constant_id = 0) const uint ACT = 0;
RBUF(0, x)
WBUF(1, y)
layout(push_constant) uniform P { uint n; float alpha; } p;

float sigmoid_(float v) { return 1.0 / (1.0 + exp(-v)); }

float tanh_(float v) {
    // tanh() of large arguments returns NaN on some drivers (exp overflow).
    float c = clamp(v, -15.0, 15.0);
    float e = exp(2.0 * c);
    return (e - 1.0) / (e + 1.0);
}

void main() {
    uint i = linearGroup() * 256 + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    float v = x_ld(i);
    float r;
    if (ACT == 0) r = v * sigmoid_(v);
    else if (ACT == 1) r = gelu_(v);
    else if (ACT == 2) r = 0.5 * v * (1.0 + tanh_(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    else if (ACT == 3) r = v * sigmoid_(1.702 * v);
    else if (ACT == 4) r = v >= 0.0 ? v : p.alpha * v;
    else if (ACT == 5) r = v * p.alpha;
    else if (ACT == 6) r = sqrt(v);
    else if (ACT == 7) r = inversesqrt(v);
    else if (ACT == 8) r = exp(v);
    else if (ACT == 9) { float s = sigmoid_(v); r = s * (1.0 + v * (1.0 - s)); }
    else if (ACT == 10) r = gelu_grad_(v);
    else if (ACT == 11) {
        const float k = 0.7978845608028654;
        float u = k * (v + 0.044715 * v * v * v);
        float t = tanh_(u);
        r = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * v * v);
    }
    else if (ACT == 12) { float s = sigmoid_(1.702 * v); r = s + 1.702 * v * s * (1.0 - s); }
    else r = v >= 0.0 ? 1.0 : p.alpha;
    y_st(i, r);
}
