#version 450
#include "storage.glsl"
// layernorm: one row per workgroup, normalised over its last dimension with
// affine gamma/beta. Two passes (mean, then the squared deviations from it)
// so rows with a large mean keep their variance; the row is kept in shared
// memory up to CACHE elements so the passes after the first do not reread
// global memory. Each thread only rereads the cache slots it wrote itself,
// so the cache needs no barrier.
#include "common.glsl"
// The workgroup width is a specialization constant picked from the row
// width: narrow rows (CLIP tiny, 32) should not idle most invocations, and
// CPU drivers pay per invocation for every workgroup that has barriers.
layout(local_size_x_id = 0) in;
RBUF(0, x)
RBUF(1, gamma)
RBUF(2, beta)
WBUF(3, y)
layout(push_constant) uniform P { uint rows, d; float eps; } p;

const uint WG = gl_WorkGroupSize.x, CACHE = 4096, PARTS = 8;
shared float row[CACHE];
shared float red[256]; // WG <= 256
shared float part[PARTS];

// Two-level sum: PARTS invocations add WG/PARTS values each, then every
// invocation adds those PARTS in the same order. Two barriers instead of a log2(WG)-step
// tree (barriers dominate on CPU drivers). The next call writes red before
// its first barrier, which every invocation passes only after reading
// part here, so no trailing barrier is needed.
float reduceSum(float v) {
    uint t = gl_LocalInvocationID.x;
    red[t] = v;
    barrier();
    if (t < PARTS) {
        float s = 0.0;
        for (uint i = t; i < WG; i += PARTS) s += red[i];
        part[t] = s;
    }
    barrier();
    float r = 0.0;
    for (uint i = 0; i < PARTS; i++) r += part[i];
    return r;
}

float at(uint base, uint i) { return i < CACHE ? row[i] : x_ld(base + i); }

void main() {
    uint r = linearGroup();
    if (r >= p.rows) return; // whole workgroup: the grid may overshoot
    uint t = gl_LocalInvocationID.x;
    uint base = r * p.d;

    float s = 0.0;
    for (uint i = t; i < p.d; i += WG) {
        float v = x_ld(base + i);
        if (i < CACHE) row[i] = v;
        s += v;
    }
    float mean = reduceSum(s) / float(p.d);
    float q = 0.0;
    for (uint i = t; i < p.d; i += WG) {
        float dv = at(base, i) - mean;
        q += dv * dv;
    }
    float rstd = 1.0 / sqrt(reduceSum(q) / float(p.d) + p.eps);
    for (uint i = t; i < p.d; i += WG) {
        y_st(base + i, (at(base, i) - mean) * rstd * gamma_ld(i) + beta_ld(i));
    }
}
