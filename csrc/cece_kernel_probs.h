/* from_logits=False: probabilities in, Keras's renormalise-and-clip.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

/* ---- from_logits=False: probabilities in, Keras's renormalise-and-clip ------------------ */

/* Rare path, written for clarity: one position at a time along a stride, in float64. */
static void FN(ce_prob_inputs)(const cece_ce_args *a, const FN(consts) *k, int64_t p0,
                               int64_t p1, cece_sums *acc, int64_t *bad) {
    const int64_t C = a->classes, inner = a->inner;
    const double lo = CECE_CLIP_EPSILON, hi = 1.0 - CECE_CLIP_EPSILON;
    const double *w = a->class_weight;
    T *losses = (T *)a->losses;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t o = p / inner, offset = o * C * inner + (p - o * inner);
        const T *x = (const T *)a->logits + offset;
        const T *t = a->probs ? (const T *)a->probs + offset : NULL;
        T *g = a->grad ? (T *)a->grad + offset : NULL;
        int64_t y;
        double s, wy;
        if (FN(position_start)(a, p, p0, g, inner, acc, bad, &y, &s, &wy)) continue;
        const int lane = (int)((p - p0) % CECE_SUM_LANES);
        double P = 0.0;
        for (int64_t j = 0; j < C; j++) P += (double)x[j * inner];
        double loss = 0.0, G = 0.0;
        for (int64_t j = 0; j < C; j++) {
            double wj = w ? w[j] : 1.0;
            double aj = t ? wj * (k->keep * (double)t[j * inner] + k->uni)
                          : wj * k->uni + (j == y ? k->keep * wy : 0.0);
            double q = (double)x[j * inner] / P;
            double r = q < lo ? lo : (q > hi ? hi : q);
            if (aj != 0.0) loss -= aj * log(r);
            G += (q >= lo && q <= hi ? -aj / r : 0.0) * q;
        }
        if (losses) losses[p] = (T)(s * loss);
        acc->loss[lane] += s * loss;
        if (!g) continue;
        /* s * gs / P overflows for a subnormal P: then divide each (g_j - G) by P first
         * (clipped classes have g_j - G = 0, and stay 0 instead of inf * 0). */
        const double scale = s * k->grad_scale / P;
        const int scale_first = isfinite(scale);
        for (int64_t j = 0; j < C; j++) { /* x[j] is read before g[j] is written: in place works */
            double wj = w ? w[j] : 1.0;
            double aj = t ? wj * (k->keep * (double)t[j * inner] + k->uni)
                          : wj * k->uni + (j == y ? k->keep * wy : 0.0);
            double q = (double)x[j * inner] / P;
            double r = q < lo ? lo : (q > hi ? hi : q);
            double gj = q >= lo && q <= hi ? -aj / r : 0.0;
            g[j * inner] = (T)(scale_first ? scale * (gj - G) : (s * k->grad_scale) * ((gj - G) / P));
        }
    }
}
