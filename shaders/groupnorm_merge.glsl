// Shared by every groupnorm kernel (GPU: groupnorm_stats.glsl; CPU:
// groupnorm_cpu.glsl): statistics of a set of values as (count, mean,
// M2 = sum of squared deviations), merged with Chan et al.'s parallel
// formula, which stays accurate when the mean is large next to the spread
// (a one-pass sum/sum-of-squares would cancel).

// merge folds statistics b into a.
void merge(inout float na, inout float ma, inout float qa, float nb, float mb, float qb) {
    if (nb == 0.0) return;
    float n = na + nb;
    float d = mb - ma;
    ma += d * (nb / n);
    qa += qb + d * d * (na * nb / n);
    na = n;
}
