// Shared by groupnorm_stats.comp and groupnorm.comp: the workgroup-wide
// merge of the GPU kernels (the CPU ones are groupnorm_cpu.glsl).
#include "groupnorm_merge.glsl"

// Both kernels run GN_WG invocations: enough for GPUs with many chunks in
// flight, and not more, because CPU drivers pay per invocation for every
// workgroup that has barriers.
const uint GN_WG = 128, GN_PARTS = 8;

// Two-level merge of one triple per invocation: GN_PARTS invocations each
// fold GN_WG/GN_PARTS entries, then every invocation folds those in the same
// order (identical results everywhere). Two barriers instead of a
// log2(GN_WG)-step tree.
shared float sn[GN_WG], smean[GN_WG], sm2[GN_WG];
shared float tn[GN_PARTS], tmean[GN_PARTS], tm2[GN_PARTS];

void mergeGroup(inout float n, inout float mean, inout float m2) {
    uint t = gl_LocalInvocationID.x;
    sn[t] = n; smean[t] = mean; sm2[t] = m2;
    barrier();
    if (t < GN_PARTS) {
        float a = 0.0, b = 0.0, q = 0.0;
        for (uint j = t; j < GN_WG; j += GN_PARTS) merge(a, b, q, sn[j], smean[j], sm2[j]);
        tn[t] = a; tmean[t] = b; tm2[t] = q;
    }
    barrier();
    n = 0.0; mean = 0.0; m2 = 0.0;
    for (uint i = 0; i < GN_PARTS; i++) merge(n, mean, m2, tn[i], tmean[i], tm2[i]);
}
