#version 450
#include "storage.glsl"
// layernorm_cpu: the same layernorm as layernorm.comp for CPU Vulkan devices
// (lavapipe), built like conv2d_cpu.glsl: no shared memory, no barriers.
// On lavapipe a barrier is a coroutine switch per invocation (layernorm.comp
// ran the tiny UNet's 512 x 32 layernorms at about 8x a trivial dispatch),
// and every storage-buffer access is a loop over the SIMD lanes that costs
// far more than the arithmetic, however few lanes are active: what counts
// is the number of accesses a subgroup issues.
//
// A workgroup is one subgroup (one SIMD vector on lavapipe) and normalises
// p.rpw units of rows in turn, keeping the gamma and beta of the elements it
// caches (below) in registers for all of them. Two layouts (LANE_ROWS):
//
//  - a row per lane (LANE_ROWS): a unit is SG rows, lane l normalising row
//    l with its own sums. For short rows: a row per subgroup would leave
//    most lanes idle on rows narrower than a few SG (65537 rows of 3 ran
//    7x slower) and pays two subgroup reductions per row (a quarter of the
//    time of the tiny UNet's rows of 32).
//  - a row per subgroup: a unit is one row, lane l owning elements l,
//    l + SG, l + 2 SG, ... and subgroupAdd summing the lanes' parts. For
//    long rows, which a lane could not keep in registers.
//
// As layernorm.comp, two passes: the mean, then the squared deviations
// from it, so rows with a large mean keep their variance; accumulation is
// fp32 whatever the storage. Rows whose width is a multiple of 4 are read
// as vec4 (VEC4), a quarter of the accesses. A lane keeps its first NC
// elements (quads where VEC4) of the row in registers, so only the
// elements past them are reread by the later passes (and only they reload
// gamma and beta per row); loops over the cache carry [[unroll]] so it is
// not indexed dynamically, which would put it in memory. Addresses are
// clamped into the row (and the last row) so every load stays in bounds;
// the cached elements past the row's end hold zero, and rows past the last
// store nothing.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_ballot : require
#include "common.glsl"
layout(local_size_x_id = 0) in; // one subgroup per workgroup
layout(constant_id = 0) const uint SG = 8; // the device's subgroup size
layout(constant_id = 1) const uint NC = 4; // elements (quads) per lane kept in registers
layout(constant_id = 2) const bool VEC4 = false; // the row width is a multiple of 4
layout(constant_id = 3) const bool LANE_ROWS = false; // a row per lane, not per subgroup
// Buffers are bound at 16-byte aligned offsets (graph/program.go plan) and
// with VEC4 every row starts at a multiple of 4 elements, so element i*4 of
// a scalar view is element i of the vec4 (or f16vec4) ones.
RBUF4(0, x)
RBUF4(1, gamma)
RBUF4(2, beta)
WBUF4(3, y)
// rpw: units (rows, or SG rows with LANE_ROWS) per workgroup.
layout(push_constant) uniform P { uint rows, d; float eps; uint rpw; } p;

// The components of an element that belong to the row: a scalar row uses
// only .x of its vec4s. Not a const: glslang makes that a specialization
// constant Select of two vectors, which lavapipe evaluated to the scalar
// one even with VEC4 true.
vec4 live() { return vec4(1.0, VEC4 ? 1.0 : 0.0, VEC4 ? 1.0 : 0.0, VEC4 ? 1.0 : 0.0); }
// A lane's elements of a row are first, first + STEP, first + 2 STEP, ...
const uint STEP = LANE_ROWS ? 1 : SG;

// Element i of the row at base (base and i counted in elements, quads
// where VEC4).
vec4 ldx(uint base, uint i) { return VEC4 ? x_ld4(base + i) : vec4(x_ld(base + i), 0.0, 0.0, 0.0); }
vec4 ldg(uint i) { return VEC4 ? gamma_ld4(i) : vec4(gamma_ld(i), 0.0, 0.0, 0.0); }
vec4 ldb(uint i) { return VEC4 ? beta_ld4(i) : vec4(beta_ld(i), 0.0, 0.0, 0.0); }
void sty(uint base, uint i, vec4 v) {
    if (VEC4) y_st4(base + i, v);
    else y_st(base + i, v.x);
}

// The row's sum: the lane's own, or the subgroup's.
float rowSum(float v) { return LANE_ROWS ? v : subgroupAdd(v); }

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint n = VEC4 ? p.d / 4 : p.d; // elements (quads) per row
    uint first = LANE_ROWS ? 0 : lane;
    uint perUnit = LANE_ROWS ? SG : 1; // rows per unit
    uint u0 = linearGroup() * p.rpw;
    if (u0 * perUnit >= p.rows) return; // whole workgroup: the grid may overshoot

    vec4 g[NC], b[NC];
    if (LANE_ROWS) {
        // Every lane needs the same NC: each loads one of SG of them and
        // subgroupBroadcast hands it to the others.
        [[unroll]] for (uint j = 0; j < NC; j += SG) {
            uint i = min(j + lane, n - 1);
            vec4 gv = ldg(i), bv = ldb(i);
            [[unroll]] for (uint l = 0; l < SG; l++) {
                if (j + l < NC) {
                    g[j + l] = subgroupBroadcast(gv, l);
                    b[j + l] = subgroupBroadcast(bv, l);
                }
            }
        }
    } else {
        [[unroll]] for (uint k = 0; k < NC; k++) {
            uint i = min(first + k * STEP, n - 1);
            g[k] = ldg(i);
            b[k] = ldb(i);
        }
    }
    for (uint u = 0; u < p.rpw; u++) {
        uint r0 = (u0 + u) * perUnit;
        if (r0 >= p.rows) break; // uniform: the last workgroup's units run out
        uint r = r0 + (LANE_ROWS ? lane : 0);
        uint base = min(r, p.rows - 1) * n;

        vec4 c[NC];
        vec4 s = vec4(0.0);
        [[unroll]] for (uint k = 0; k < NC; k++) {
            uint i = first + k * STEP;
            vec4 v = ldx(base, min(i, n - 1));
            c[k] = i < n ? v : vec4(0.0);
            s += c[k];
        }
        for (uint i = first + NC * STEP; i < n; i += STEP) s += ldx(base, i);
        float mean = rowSum(dot(s, live())) / float(p.d);

        vec4 q = vec4(0.0);
        [[unroll]] for (uint k = 0; k < NC; k++) {
            vec4 dv = (c[k] - mean) * live();
            q += first + k * STEP < n ? dv * dv : vec4(0.0);
        }
        for (uint i = first + NC * STEP; i < n; i += STEP) {
            vec4 dv = (ldx(base, i) - mean) * live();
            q += dv * dv;
        }
        float rstd = 1.0 / sqrt(rowSum(q.x + q.y + q.z + q.w) / float(p.d) + p.eps);

        if (r < p.rows) {
            [[unroll]] for (uint k = 0; k < NC; k++) {
                uint i = first + k * STEP;
                if (i < n) sty(base, i, (c[k] - mean) * rstd * g[k] + b[k]);
            }
            for (uint i = first + NC * STEP; i < n; i += STEP) {
                sty(base, i, (ldx(base, i) - mean) * rstd * ldg(i) + ldb(i));
            }
        }
    }
}
