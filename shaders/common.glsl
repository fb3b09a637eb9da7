// Shared helpers for neti's compute shaders.

// Large 1-D problems are dispatched as a 2-D grid of workgroups because one
// dimension of the grid is limited (65535 on many devices); this recovers the
// linear workgroup index.
uint linearGroup() {
    return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
}

// erfcpos_ is erfc(a) for a >= 0 (Numerical Recipes erfcc: relative error
// below 1.2e-7 everywhere, including the tail where erfc is tiny).
float erfcpos_(float a) {
    float t = 1.0 / (1.0 + 0.5 * a);
    return t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
            t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
            t * (-0.82215223 + t * 0.17087277)))))))));
}

// erf_ is erf(v): a Taylor series near 0 (exact to fp32 for |v| < 0.5),
// 1 - erfc elsewhere.
float erf_(float v) {
    float a = abs(v);
    if (a < 0.5) {
        float t = v * v;
        float s = 1.0 - t / 3.0 + t * t / 10.0 - t * t * t / 42.0 + t * t * t * t / 216.0 - t * t * t * t * t / 1320.0 + t * t * t * t * t * t / 9360.0;
        return 1.1283791670955126 * v * s;
    }
    float r = 1.0 - erfcpos_(a);
    return v < 0.0 ? -r : r;
}

// gelu_ is the exact GELU 0.5 v (1 + erf(v/sqrt2)). For negative v it uses
// erfc directly: 1 + erf(z) = erfc(-z), which avoids the cancellation that
// would leave only a few correct bits in GELU's small negative tail.
float gelu_(float v) {
    float z = v * 0.7071067811865476;
    if (abs(z) < 0.5) return 0.5 * v * (1.0 + erf_(z));
    float c = erfcpos_(abs(z));
    return v >= 0.0 ? 0.5 * v * (2.0 - c) : 0.5 * v * c;
}

// Reduce x to [-pi, pi] with a 3-part 2*pi so the reduction error stays
// far below fp32 resolution for |x| < 1e5.
float reduce2pi(float x) {
    const float C1 = 6.28125;                  // exact in 9 bits
    const float C2 = 1.9353071795864769e-3;    // 2pi - C1, high part
    const float C3 = 2.5039e-13;               // residual (rough)
    float k = floor(x / 6.283185307179586 + 0.5);
    return ((x - k * C1) - k * C2) - k * C3;
}

// gelu_grad_ is d/dv of the exact GELU: Phi(v) + v * phi(v), with Phi from
// erfc for negative v (same cancellation argument as gelu_).
float gelu_grad_(float v) {
    float z = v * 0.7071067811865476;
    float cdf;
    if (abs(z) < 0.5) cdf = 0.5 * (1.0 + erf_(z));
    else { float c = erfcpos_(abs(z)); cdf = v >= 0.0 ? 1.0 - 0.5 * c : 0.5 * c; }
    return cdf + v * 0.3989422804014327 * exp(-0.5 * v * v);
}
