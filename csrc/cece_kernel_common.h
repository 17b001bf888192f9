/* The per-call constants and the softcap, shared by every kernel.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

typedef struct {
    double keep;        /* 1 - label_smoothing */
    double uni;         /* label_smoothing / C */
    double weight_sum;  /* W = sum_j w_j */
    double z_loss;
    double grad_scale;
    int has_cap, has_w, store_exp;
    int plain; /* integer labels, no weights, smoothing, z-loss or softcap */
    T cap, inv_cap;
} FN(consts);

CECE_INLINE T FN(capped)(T x, const int has_cap, T cap, T inv_cap) {
    return has_cap ? cap * VTANH(x * inv_cap) : x;
}

/* The start of one position of the row-at-a-time kernels: its share of "mean"'s denominator
 * into its lane (p0: the item's first position), its label status, weights. For an ignored
 * or out-of-range label also its zero loss and gradient (C entries `stride` apart), and the
 * first bad position; returns 1 then: nothing more to compute. */
CECE_INLINE int FN(position_start)(const cece_ce_args *a, int64_t p, int64_t p0, T *g,
                                   int64_t stride, cece_sums *acc, int64_t *bad, int64_t *y,
                                   double *s, double *wy) {
    acc->den[(p - p0) % CECE_SUM_LANES] += cece_position_weight(a, p, y, s, wy);
    if (*y != CECE_IGNORED && *y != CECE_BAD) return 0;
    if (*y == CECE_BAD && p < *bad) *bad = p;
    if (a->losses) ((T *)a->losses)[p] = 0;
    if (g)
        for (int64_t j = 0; j < a->classes; j++) g[j * stride] = 0;
    return 1;
}

/* A gradient entry is scale * (K p_j - a_j) with scale = s / D. The fast loops apply the
 * factors in T, pre-multiplied in float64 (scale K and scale, for scale * a_j where a_j != 0):
 * s / D alone may not fit in a float (tiny weights: D ~ 1e-40) while s K / D does. Where a
 * pre-multiplied factor does not fit in T or is not finite (a gradient that overflows, tiny
 * weights beside ordinary ones) the loops take their `wide` form: the difference K p_j - a_j
 * in float64, then times scale, then rounded to T: an entry that overflows is inf, one whose
 * difference is 0 stays 0 while scale is finite (never inf - inf, or inf * 0 from a product
 * that overflowed on the way). */
CECE_INLINE T FN(scaled)(T scale, T a) {
    return a != (T)0 ? scale * a : (T)0;
}

CECE_INLINE T FN(wide_entry)(double difference, double scale) {
    return (T)(difference * scale); /* 0 * inf (D = 0) stays NaN, as PyTorch's 0 / 0 */
}

/* Whether a factor pre-multiplied in float64 can be used in T. */
CECE_INLINE int FN(fits)(double x) {
    return isfinite(x) && (sizeof(T) == sizeof(double) || fabs(x) <= (double)FLT_MAX);
}

/* d z_capped / d z, from z_capped itself. */
CECE_INLINE T FN(cap_chain)(T zc, const int has_cap, T inv_cap) {
    T u = zc * inv_cap;
    return has_cap ? (T)1 - u * u : (T)1;
}
