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

/* scale * a for a target mass a, 0 where a is 0. The gradient's per-position factors (s / D
 * and s K / D) are formed in float64: s / D may not fit in a float (tiny weights: D ~ 1e-40)
 * while s K / D does. Where a factor does not fit in T (a gradient that overflows T, or tiny
 * weights next to ordinary ones) the gradient loops take their `wide` form, with the factors
 * applied in float64 and only the result rounded to T: an entry that overflows is then inf,
 * and one with no target mass 0, never inf - inf or inf * 0. */
CECE_INLINE T FN(scaled)(T scale, T a) {
    return a != (T)0 ? scale * a : (T)0;
}

CECE_INLINE double FN(scaled_wide)(double scale, T a) {
    return a != (T)0 ? scale * (double)a : 0.0;
}

/* Whether a factor formed in float64 fits in T (always, for double). */
CECE_INLINE int FN(fits)(double x) {
    return sizeof(T) == sizeof(double) || !(fabs(x) > (double)FLT_MAX);
}

/* d z_capped / d z, from z_capped itself. */
CECE_INLINE T FN(cap_chain)(T zc, const int has_cap, T inv_cap) {
    T u = zc * inv_cap;
    return has_cap ? (T)1 - u * u : (T)1;
}
