// Shared by groupnorm_stats.comp and groupnorm.comp: statistics of a set of
// values as (count, mean, M2 = sum of squared deviations), merged with
// Chan et al.'s parallel formula, which stays accurate when the mean is
// large next to the spread (a one-pass sum/sum-of-squares would cancel).

// merge folds statistics b into a.
void merge(inout float na, inout float ma, inout float qa, float nb, float mb, float qb) {
    if (nb == 0.0) return;
    float n = na + nb;
    float d = mb - ma;
    ma += d * (nb / n);
    qa += qb + d * d * (na * nb / n);
    na = n;
}

// Two-level merge of one triple per invocation of a 256-wide workgroup:
// 16 invocations each fold 16 entries, then every invocation folds those 16
// in the same order (identical results everywhere). Two barriers instead of
// a log2(256)-step tree: barriers are the dominant cost on CPU drivers.
shared float sn[256], smean[256], sm2[256];
shared float tn[16], tmean[16], tm2[16];

void mergeGroup(inout float n, inout float mean, inout float m2) {
    uint t = gl_LocalInvocationID.x;
    sn[t] = n; smean[t] = mean; sm2[t] = m2;
    barrier();
    if (t < 16) {
        float a = 0.0, b = 0.0, q = 0.0;
        for (uint i = 0; i < 16; i++) {
            uint j = t + 16 * i;
            merge(a, b, q, sn[j], smean[j], sm2[j]);
        }
        tn[t] = a; tmean[t] = b; tm2[t] = q;
    }
    barrier();
    n = 0.0; mean = 0.0; m2 = 0.0;
    for (uint i = 0; i < 16; i++) merge(n, mean, m2, tn[i], tmean[i], tm2[i]);
}
