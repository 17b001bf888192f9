/* Tiles: neighbouring positions side by side, vectorised across them (the class axis in
 * the middle, and transposed blocks of short rows with any option).
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

/* ---- tiles: nw <= CECE_TILE neighbouring positions, class c of position i at zb[c * stride + i] */

/* Per-tile state, one entry per position of the tile. */
typedef struct {
    int64_t y[CECE_TILE];                  /* label status (cece_work.h) */
    double s[CECE_TILE], wy[CECE_TILE];    /* sample weight, class weight of the label */
    double dw[CECE_TILE];                  /* share of "mean"'s denominator */
    double A[CECE_TILE], Ad[CECE_TILE];    /* smoothing / probability-target dot products */
    double loss[CECE_TILE], gy[CECE_TILE]; /* s * l; the label's own gradient entry */
    T m[CECE_TILE], zy[CECE_TILE], U[CECE_TILE], log_s[CECE_TILE]; /* U = S - 1 */
    T valid[CECE_TILE];
    /* the gradient's factors (FN(scaled)): K, K / S and scale in float64; scale K,
     * scale K / S and scale in T */
    double K[CECE_TILE], KS[CECE_TILE], scale[CECE_TILE];
    T Kt[CECE_TILE], KSt[CECE_TILE], scalet[CECE_TILE];
} FN(tile_state);

/* Labels, weights and denominator shares of positions p0.., vectorised across them (one
 * variant per weight combination, so that the common one is a plain vector loop); returns how
 * many labels are out of range (the caller looks for the first only when there is one). */
CECE_INLINE int64_t FN(tile_labels_)(const cece_ce_args *a, int64_t p0, int64_t nw,
                                     FN(tile_state) *st, const int has_w, const int has_sw) {
    const int64_t *label = a->labels + p0;
    const double *sw = a->sample_weight + (has_sw ? p0 : 0);
    const double *w = a->class_weight;
    const int64_t C = a->classes, ignore = a->ignore_index;
    int64_t nbad = 0;
#pragma omp simd reduction(+ : nbad)
    for (int64_t i = 0; i < nw; i++) {
        const int64_t l = label[i];
        /* As cece_position_weight: ignore_index first, then the range. */
        const int64_t y = l == ignore ? CECE_IGNORED : ((uint64_t)l < (uint64_t)C ? l : CECE_BAD);
        const double s = has_sw ? sw[i] : 1.0;
        const double wy = has_w ? (y >= 0 ? w[y >= 0 ? y : 0] : 1.0) : 1.0;
        st->y[i] = y;
        st->s[i] = s;
        st->wy[i] = wy;
        st->dw[i] = y >= 0 ? s * wy : 0.0;
        st->valid[i] = y >= 0 ? (T)1 : (T)0;
        nbad += y == CECE_BAD;
    }
    return nbad;
}

static int64_t FN(tile_positions)(const cece_ce_args *a, int64_t p0, int64_t nw,
                                  FN(tile_state) *st) {
    const double *sw = a->sample_weight ? a->sample_weight + p0 : NULL;
    if (!a->labels) {
        for (int64_t i = 0; i < nw; i++) {
            st->y[i] = CECE_NO_LABEL;
            st->s[i] = sw ? sw[i] : 1.0;
            st->wy[i] = 1.0;
            st->dw[i] = st->s[i];
            st->valid[i] = 1;
        }
        return 0;
    }
    if (a->class_weight)
        return sw ? FN(tile_labels_)(a, p0, nw, st, 1, 1) : FN(tile_labels_)(a, p0, nw, st, 1, 0);
    return sw ? FN(tile_labels_)(a, p0, nw, st, 0, 1) : FN(tile_labels_)(a, p0, nw, st, 0, 0);
}

CECE_INLINE void FN(tile_max)(const T *zb, int64_t C, int64_t inner, int64_t nw, T *m) {
    if (nw == CECE_TILE) {
        /* A full tile's maxima in a local array of constant size, which the compiler keeps
         * in registers across the classes; through m, each class loaded and stored them
         * again (a store-to-load chain per class: a third of an axis=1 forward). */
        T top[CECE_TILE];
        for (int64_t i = 0; i < CECE_TILE; i++) top[i] = -(T)INFINITY;
        for (int64_t c = 0; c < C; c++) {
            const T *zc = zb + c * inner;
#pragma omp simd
            for (int64_t i = 0; i < CECE_TILE; i++) top[i] = zc[i] > top[i] ? zc[i] : top[i];
        }
        for (int64_t i = 0; i < CECE_TILE; i++) m[i] = top[i];
        return;
    }
    for (int64_t i = 0; i < nw; i++) m[i] = -(T)INFINITY;
    for (int64_t c = 0; c < C; c++) {
        const T *zc = zb + c * inner;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) m[i] = zc[i] > m[i] ? zc[i] : m[i];
    }
}

/* U_i = S_i - 1 with S_i = sum_c exp(z_ci - m_i), from the exps kept apart as in the rows
 * (chunk_sumexp_): those exactly 1 counted, the others summed in T. Up to CECE_SUM_BLOCK
 * classes that is all in T; beyond, each block of CECE_SUM_BLOCK classes is
 * added to float64 sums (one conversion per block and position, however many classes the
 * (outer, C, inner) layout has). With `eb` set (no softcap), also stores each exp there for
 * the gradient pass, as the row kernel does. (Leaving the label's own term out instead of
 * counting the ones was measured 4-20% slower: three running selects against two sums.) */
CECE_INLINE void FN(tile_block_sumexp_)(const T *zb, T *eb, int64_t c0, int64_t c1, int64_t inner,
                                        int64_t nw, const T *m, T *rest, T *ones,
                                        const int has_cap, T cap, T inv_cap, const int store,
                                        const T *ahead) {
#ifdef TILE_SUMEXP
    if (!has_cap && nw == CECE_TILE) { /* the level's own loop, the same bits */
        TILE_SUMEXP(zb, eb, c0, c1, inner, m, rest, ones, store, ahead);
        return;
    }
#endif
    (void)ahead; /* the next tile, prefetched by the AVX-512 loop only */
    for (int64_t i = 0; i < nw; i++) rest[i] = ones[i] = 0;
    for (int64_t c = c0; c < c1; c++) {
        const T *zc = zb + c * inner;
        T *ec = store ? eb + c * inner : NULL;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) {
            T x = FN(capped)(zc[i], has_cap, cap, inv_cap) - m[i];
            T e = VEXPS(x);
            if (store) ec[i] = e;
            T other = x != (T)0 ? (T)1 : (T)0; /* NaN is no max: it goes to the rest */
            rest[i] += e * other;
            ones[i] += (T)1 - other;
        }
    }
}

CECE_INLINE void FN(tile_sumexp_)(const T *zb, T *eb, int64_t C, int64_t inner, int64_t nw,
                                  const T *m, T *U, const int has_cap, T cap, T inv_cap,
                                  const int store, const T *ahead) {
    T rest[CECE_TILE], ones[CECE_TILE];
    if (C <= CECE_SUM_BLOCK) {
        FN(tile_block_sumexp_)(zb, eb, 0, C, inner, nw, m, rest, ones, has_cap, cap, inv_cap, store, ahead);
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) U[i] = (ones[i] - 1) + rest[i];
        return;
    }
    double R[CECE_TILE], O[CECE_TILE];
    for (int64_t i = 0; i < nw; i++) R[i] = O[i] = 0.0;
    for (int64_t c0 = 0; c0 < C; c0 += CECE_SUM_BLOCK) {
        const int64_t c1 = C - c0 < CECE_SUM_BLOCK ? C : c0 + CECE_SUM_BLOCK;
        FN(tile_block_sumexp_)(zb, eb, c0, c1, inner, nw, m, rest, ones, has_cap, cap, inv_cap, store, ahead);
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) {
            R[i] += (double)rest[i];
            O[i] += (double)ones[i];
        }
    }
#pragma omp simd
    for (int64_t i = 0; i < nw; i++) U[i] = (T)((O[i] - 1.0) + R[i]);
}

static void FN(tile_sumexp)(const T *zb, T *eb, int64_t C, int64_t inner, int64_t nw, const T *m,
                            T *U, const FN(consts) *k, const T *ahead) {
    if (eb) FN(tile_sumexp_)(zb, eb, C, inner, nw, m, U, 0, k->cap, k->inv_cap, 1, ahead);
    else if (k->has_cap) FN(tile_sumexp_)(zb, NULL, C, inner, nw, m, U, 1, k->cap, k->inv_cap, 0, ahead);
    else FN(tile_sumexp_)(zb, NULL, C, inner, nw, m, U, 0, k->cap, k->inv_cap, 0, ahead);
}

/* Ad += sum_c a_c * (z_c - m) and A += sum_c a_c over the tile, for either target form:
 * integer targets pass t = NULL and get a_c = uni * w_c (the smoothing part only). */
CECE_INLINE void FN(tile_dot_)(const T *zb, const T *tb, int64_t C, int64_t inner, int64_t nw,
                               const T *m, const double *w, double keep, double uni, double *A,
                               double *Ad, const int has_cap, T cap, T inv_cap, const int has_t) {
    for (int64_t c = 0; c < C; c++) {
        const T *zc = zb + c * inner;
        const T *tc = has_t ? tb + c * inner : NULL;
        double wc = w ? w[c] : 1.0;
        if (!has_t && wc == 0.0) continue;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) {
            double a = has_t ? wc * (keep * (double)tc[i] + uni) : wc * uni;
            double d = (double)FN(capped)(zc[i], has_cap, cap, inv_cap) - (double)m[i];
            A[i] += a;
            Ad[i] += a == 0.0 ? 0.0 : a * d;
        }
    }
}

static void FN(tile_dot)(const T *zb, const T *tb, int64_t C, int64_t inner, int64_t nw,
                         const T *m, const double *w, const FN(consts) *k, double *A, double *Ad) {
    if (k->has_cap) {
        if (tb) FN(tile_dot_)(zb, tb, C, inner, nw, m, w, k->keep, k->uni, A, Ad, 1, k->cap, k->inv_cap, 1);
        else FN(tile_dot_)(zb, tb, C, inner, nw, m, w, k->keep, k->uni, A, Ad, 1, k->cap, k->inv_cap, 0);
    } else {
        if (tb) FN(tile_dot_)(zb, tb, C, inner, nw, m, w, k->keep, k->uni, A, Ad, 0, k->cap, k->inv_cap, 1);
        else FN(tile_dot_)(zb, tb, C, inner, nw, m, w, k->keep, k->uni, A, Ad, 0, k->cap, k->inv_cap, 0);
    }
}

CECE_INLINE void FN(tile_grad_)(const T *zb, const T *tb, T *gb, int64_t C, int64_t inner,
                                int64_t nw, const FN(tile_state) *st, const double *w, T keep,
                                T uni, const int has_cap, T cap, T inv_cap, const int has_t,
                                const int wide) {
    for (int64_t c = 0; c < C; c++) {
        const T *zc = zb + c * inner;
        const T *tc = has_t ? tb + c * inner : NULL;
        T *gc = gb + c * inner;
        T wc = w ? (T)w[c] : (T)1;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) {
            T zz = FN(capped)(zc[i], has_cap, cap, inv_cap);
            T p = VEXPS((zz - st->m[i]) - st->log_s[i]);
            T a = has_t ? wc * (keep * tc[i] + uni) : wc * uni;
            T chain = FN(cap_chain)(zz, has_cap, inv_cap);
            T v = wide ? FN(wide_entry)((st->K[i] * (double)p - (double)a) * (double)chain,
                                        st->scale[i])
                       : (st->Kt[i] * p - FN(scaled)(st->scalet[i], a)) * chain;
            gc[i] = st->valid[i] != 0 ? v : (T)0;
        }
    }
}

/* The gradient from exps stored by tile_sumexp: g = (scale K / S) e - scale a. */
CECE_INLINE void FN(tile_grad_stored_)(const T *tb, T *gb, int64_t C, int64_t inner, int64_t nw,
                                       const FN(tile_state) *st, const double *w, T keep, T uni,
                                       const int has_t, const int wide) {
    for (int64_t c = 0; c < C; c++) {
        const T *tc = has_t ? tb + c * inner : NULL;
        T *gc = gb + c * inner;
        T wc = w ? (T)w[c] : (T)1;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) {
            T a = has_t ? wc * (keep * tc[i] + uni) : wc * uni;
            T v = wide ? FN(wide_entry)(st->KS[i] * (double)gc[i] - (double)a, st->scale[i])
                       : st->KSt[i] * gc[i] - FN(scaled)(st->scalet[i], a);
            gc[i] = st->valid[i] != 0 ? v : (T)0;
        }
    }
}

static void FN(tile_grad)(const T *zb, const T *tb, T *gb, int64_t C, int64_t inner, int64_t nw,
                          const FN(tile_state) *st, const double *w, const FN(consts) *k,
                          int wide) {
    T keep = (T)k->keep, uni = (T)k->uni;
    if (wide) { /* rare: one loop with every option */
        FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, k->has_cap, k->cap, k->inv_cap,
                       tb != NULL, 1);
    } else if (k->has_cap) {
        if (tb) FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 1, k->cap, k->inv_cap, 1, 0);
        else FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 1, k->cap, k->inv_cap, 0, 0);
    } else {
        if (tb) FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 0, k->cap, k->inv_cap, 1, 0);
        else FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 0, k->cap, k->inv_cap, 0, 0);
    }
}

/* The per-position finish, branch-free so that it vectorises like the rest: loss, and with
 * `want_grad` the gradient's per-position factors and the label's own entry. log S, lse and
 * z_y - m in T (a float32 call needs no float64 log); the products with the weights in
 * float64, since weights as small as 1e-40 are legitimate (the mean cancels their scale) and
 * would vanish in a float. The label's entry K p_y - a_y is taken as ((K - a_y) - a_y U) / S
 * when the label is a max (p_y = 1 / S), so that it does not cancel however close p_y is to
 * 1. The gradient's factors: KS = scale K / S and sK = scale K, formed in float64 (scale =
 * s / D may not fit a float where they do), and scale itself for the target masses. */
CECE_INLINE void FN(tile_finish_)(const FN(consts) *k, int64_t nw, int labels,
                                  FN(tile_state) *st, const int want_grad, const int has_dot) {
    const double keep = k->keep, uni = k->uni, W = k->weight_sum, zl = k->z_loss;
    const double gs = k->grad_scale;
    const T inv_cap = k->inv_cap;
    const int has_cap = k->has_cap, has_zl = k->z_loss > 0.0;
#pragma omp simd
    for (int64_t i = 0; i < nw; i++) {
        T U = st->U[i];
        T log_s = VLOG1P(U);
        T m = st->m[i];
        T lse = m + log_s;
        T zy = st->zy[i];
        T dy = zy - m;
        double wy = st->wy[i], ls = (double)log_s, lse_d = (double)lse;
        double label_part = keep * wy;
        double A = labels ? label_part + uni * W : st->A[i];
        double label_term = label_part == 0.0 ? 0.0 : label_part * (double)dy;
        double Ad = labels ? label_term + (has_dot ? st->Ad[i] : 0.0) : st->Ad[i];
        double zterm = has_zl ? zl * lse_d * lse_d : 0.0; /* skipped at 0: 0 * inf is NaN */
        double loss = A * ls - Ad + zterm;
        int valid = st->valid[i] != 0;
        st->loss[i] = valid ? st->s[i] * loss : 0.0;
        if (want_grad) {
            double zgrad = has_zl ? 2.0 * zl * lse_d : 0.0;
            double K = A + zgrad;
            double scale = st->s[i] * gs;
            double ay = label_part + uni * wy;
            double chain = has_cap ? 1.0 - ((double)zy * inv_cap) * ((double)zy * inv_cap) : 1.0;
            double inv_s = 1.0 / ((double)U + 1.0);
            double general = K * (double)VEXPS(dy - log_s) - ay;
            /* K - a_y without forming K: it is small when the label holds nearly all the
             * target mass, and K's own rounding would swamp it */
            double at_max = ((uni * (W - wy) + zgrad) - ay * (double)U) * inv_s;
            st->gy[i] = scale * chain * (dy == 0 ? at_max : general);
            st->scale[i] = valid ? scale : 0.0;
            st->K[i] = valid ? K : 0.0;
            st->KS[i] = valid ? K * inv_s : 0.0;
            st->scalet[i] = (T)st->scale[i];
            st->Kt[i] = (T)(st->scale[i] * st->K[i]);
            st->KSt[i] = (T)(st->scale[i] * st->KS[i]);
            st->log_s[i] = log_s;
        }
    }
}

/* tile_finish_ for the common call: integer labels, no weights, no smoothing, no z-loss,
 * no softcap: l = log S - (z_y - m), and the label's own gradient entry p_y - 1. */
CECE_INLINE void FN(tile_finish_plain_)(const FN(consts) *k, int64_t nw, FN(tile_state) *st,
                                        const int want_grad) {
    const double gs = k->grad_scale;
    const T scale = (T)gs;
#pragma omp simd
    for (int64_t i = 0; i < nw; i++) {
        T U = st->U[i];
        T log_s = VLOG1P(U);
        T dy = st->zy[i] - st->m[i];
        int valid = st->valid[i] != 0;
        st->loss[i] = valid ? (double)(log_s - dy) : 0.0;
        if (want_grad) {
            T inv_s = 1 / (U + 1);
            T general = VEXPS(dy - log_s) - 1;
            T at_max = -U * inv_s; /* p_y - 1 at a max, without cancellation */
            st->gy[i] = (double)(scale * (dy == 0 ? at_max : general));
            st->scalet[i] = st->Kt[i] = valid ? scale : (T)0;
            st->KSt[i] = valid ? scale * inv_s : (T)0;
            st->scale[i] = (double)st->scalet[i];
            st->K[i] = 1.0;
            st->KS[i] = (double)inv_s;
            st->log_s[i] = log_s;
        }
    }
}

/* Loss (and gradient) of nw positions p0.. whose logits sit at zb[c * stride + i]: the
 * (outer, C, inner) layout with stride = inner, or a transposed block of short rows. The
 * position sums go to acc's lanes, position p0 + i to lane i % CECE_SUM_LANES (p0 is a
 * multiple of CECE_SUM_LANES past the item's first position). */
static void FN(tile_core)(const cece_ce_args *a, const FN(consts) *k, const T *zb, const T *tb,
                          T *gb, int64_t stride, int64_t p0, int64_t nw, const T *m_ready,
                          const T *ahead, cece_sums *acc, int64_t *bad) {
    const int64_t C = a->classes;
    const int labels = a->labels != NULL;
    T *losses = (T *)a->losses;
    FN(tile_state) st;

    if (FN(tile_positions)(a, p0, nw, &st) > 0)
        for (int64_t i = 0; i < nw; i++)
            if (st.y[i] == CECE_BAD && p0 + i < *bad) { *bad = p0 + i; break; }
    if (m_ready) memcpy(st.m, m_ready, (size_t)nw * sizeof(T));
    else FN(tile_max)(zb, C, stride, nw, st.m);
    if (k->has_cap)
        for (int64_t i = 0; i < nw; i++) st.m[i] = FN(capped)(st.m[i], 1, k->cap, k->inv_cap);
    /* The label's logit, softcapped in T exactly as the max and the sums see it; read before
     * an in-place pass may overwrite it. */
    if (labels)
        for (int64_t i = 0; i < nw; i++)
            st.zy[i] = st.y[i] >= 0 ? FN(capped)(zb[st.y[i] * stride + i], k->has_cap, k->cap, k->inv_cap)
                                    : (T)0;
    else /* no label: tile_finish_ computes a label entry all the same, unused (valgrind) */
        for (int64_t i = 0; i < nw; i++) st.zy[i] = 0;
    /* Store the exps in gb for the gradient, unless gb is zb and a later pass still needs
     * the logits (the same rule as the rows' k->store_exp). */
    const int store = gb && !k->has_cap && (gb != zb || (labels && k->uni == 0.0));
    FN(tile_sumexp)(zb, store ? gb : NULL, C, stride, nw, st.m, st.U, k, ahead);
    const int has_dot = tb || k->uni > 0.0;
    if (has_dot) {
        for (int64_t i = 0; i < nw; i++) st.A[i] = st.Ad[i] = 0.0;
        FN(tile_dot)(zb, tb, C, stride, nw, st.m, a->class_weight, k, st.A, st.Ad);
    }
    const int plain = labels && !has_dot && !a->class_weight && !a->sample_weight &&
                      k->z_loss == 0.0 && !k->has_cap;
    if (plain) {
        if (gb) FN(tile_finish_plain_)(k, nw, &st, 1);
        else FN(tile_finish_plain_)(k, nw, &st, 0);
    } else if (gb) {
        if (has_dot) FN(tile_finish_)(k, nw, labels, &st, 1, 1);
        else FN(tile_finish_)(k, nw, labels, &st, 1, 0);
    } else {
        if (has_dot) FN(tile_finish_)(k, nw, labels, &st, 0, 1);
        else FN(tile_finish_)(k, nw, labels, &st, 0, 0);
    }

    if (losses)
        for (int64_t i = 0; i < nw; i++) losses[p0 + i] = (T)st.loss[i];
    cece_add_to_lanes(acc->loss, st.loss, nw);
    cece_add_to_lanes(acc->den, st.dw, nw);
    if (!gb) return;
    /* A factor that does not fit in T sends the tile's gradient through float64. */
    int wide = 0;
    for (int64_t i = 0; i < nw; i++)
        wide |= !FN(fits)(st.scale[i] * st.K[i]) || !FN(fits)(st.scale[i] * st.KS[i]) ||
                !FN(fits)(st.scale[i]);
    if (store) {
        if (wide) FN(tile_grad_stored_)(tb, gb, C, stride, nw, &st, a->class_weight, (T)k->keep, (T)k->uni, tb != NULL, 1);
        else if (tb) FN(tile_grad_stored_)(tb, gb, C, stride, nw, &st, a->class_weight, (T)k->keep, (T)k->uni, 1, 0);
        else FN(tile_grad_stored_)(tb, gb, C, stride, nw, &st, a->class_weight, (T)k->keep, (T)k->uni, 0, 0);
    } else {
        FN(tile_grad)(zb, tb, gb, C, stride, nw, &st, a->class_weight, k, wide);
    }
    if (labels)
        for (int64_t i = 0; i < nw; i++)
            if (st.y[i] >= 0) gb[st.y[i] * stride + i] = (T)st.gy[i];
}

/* The (outer, C, inner) layout: positions p0..p1 lie in one outer index. */
static void FN(ce_tile)(const cece_ce_args *a, const FN(consts) *k, int64_t p0, int64_t p1,
                        cece_sums *acc, int64_t *bad) {
    const int64_t C = a->classes, inner = a->inner;
    const int64_t o = p0 / inner, offset = o * C * inner + (p0 - o * inner);
    /* the next tile's logits, prefetched while this tile's exps run: its max pass, the
     * read from memory, then finds them in L2 */
    const int64_t on = p1 / inner, next = on * C * inner + (p1 - on * inner);
    const T *ahead = p1 < a->outer * inner ? (const T *)a->logits + next : NULL;
    FN(tile_core)(a, k, (const T *)a->logits + offset,
                  a->probs ? (const T *)a->probs + offset : NULL,
                  a->grad ? (T *)a->grad + offset : NULL, inner, p0, p1 - p0, NULL, ahead, acc,
                  bad);
}

/* Rows shorter than CECE_SMALL_C: a vector along a row would be mostly empty, so blocks of
 * CECE_TILE rows are transposed into L1 (cece_columns.h) and run as tiles, vectorised across
 * rows. */
static void FN(ce_small_rows)(const cece_ce_args *a, const FN(consts) *k, int64_t p0, int64_t p1,
                              cece_sums *acc, int64_t *bad) {
    const int64_t C = a->classes, rows = cece_block_rows(C);
    T zt[CECE_BLOCK_ELEMS], tt[CECE_BLOCK_ELEMS], gt[CECE_BLOCK_ELEMS];
    T m[CECE_TILE];
    for (int64_t b0 = p0; b0 < p1; b0 += rows) {
        const int64_t nw = p1 - b0 < rows ? p1 - b0 : rows;
        const T *t = a->probs ? (const T *)a->probs + b0 * C : NULL;
        T *g = a->grad ? (T *)a->grad + b0 * C : NULL;
        ROWS_TO_TILE_MAX((const T *)a->logits + b0 * C, C, nw, rows, zt, m);
        if (t) ROWS_TO_TILE(t, C, nw, rows, tt);
        FN(tile_core)(a, k, zt, t ? tt : NULL, g ? gt : NULL, rows, b0, nw, m, NULL, acc, bad);
        if (g) TILE_TO_ROWS(gt, C, nw, rows, g);
    }
}
