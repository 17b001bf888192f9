/* The cross-entropy and normalisation kernels, written once.
 *
 * Included once per dtype by every cece_level_*.c, which defines before including it:
 *   T      float or double
 *   SUF    the name suffix, e.g. f32_avx2
 *   VEXP   the vectorisable exp for T    (cece_math.h)
 *   VTANH  the vectorisable tanh for T   (cece_math.h)
 * and undefines them after. docs/semantics.md has the maths; the names below follow it:
 * m = max, S = sum exp(z - m), a_j = w_j * t_j, A = sum a_j, D = mean's denominator.
 *
 * Two loop shapes: rows (inner == 1: a position's C logits are contiguous, loops run along
 * the classes) and tiles (inner > 1: CECE_TILE neighbouring positions, loops run along
 * inner for each class). Small always-inline helpers take constant flags (has_cap, has_w)
 * so each combination compiles to its own tight vector loop.
 */

#define CECE_PASTE_(a, b) a##_##b
#define CECE_PASTE(a, b) CECE_PASTE_(a, b)
#define FN(name) CECE_PASTE(name, SUF)

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

/* d z_capped / d z, from z_capped itself. */
CECE_INLINE T FN(cap_chain)(T zc, const int has_cap, T inv_cap) {
    T u = zc * inv_cap;
    return has_cap ? (T)1 - u * u : (T)1;
}

/* ---- rows: one position's logits are z[0..C) ---------------------------------------- */

CECE_INLINE T FN(row_max)(const T *z, int64_t n) {
    T m = -(T)INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; j++) m = z[j] > m ? z[j] : m;
    return m;
}

/* sum_j uni * w_j * (z_j - m): the label-smoothing part of sum_j a_j * logp_j for integer
 * targets. Each term carries its factor uni = eps / C: summed first, the differences of
 * logits that span the float64 range would overflow. */
CECE_INLINE double FN(row_wdot_)(const T *z, int64_t n, T m, const double *w, double uni,
                                 const int has_cap, T cap, T inv_cap, const int has_w) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) {
        double d = (double)FN(capped)(z[j], has_cap, cap, inv_cap) - (double)m; /* in double: float32 differences can overflow */
        double a = (has_w ? w[j] : 1.0) * uni;
        s += a == 0.0 ? 0.0 : a * d; /* xlogy: no target mass, no term */
    }
    return s;
}

static double FN(row_wdot)(const T *z, int64_t n, T m, const double *w, const FN(consts) *k) {
    if (k->has_cap)
        return k->has_w ? FN(row_wdot_)(z, n, m, w, k->uni, 1, k->cap, k->inv_cap, 1)
                        : FN(row_wdot_)(z, n, m, w, k->uni, 1, k->cap, k->inv_cap, 0);
    return k->has_w ? FN(row_wdot_)(z, n, m, w, k->uni, 0, k->cap, k->inv_cap, 1)
                    : FN(row_wdot_)(z, n, m, w, k->uni, 0, k->cap, k->inv_cap, 0);
}

/* A = sum_j a_j and Ad = sum_j a_j * (z_j - m) for a probability target row t. */
CECE_INLINE void FN(row_probdot_)(const T *z, const T *t, int64_t n, T m, const double *w,
                                  double keep, double uni, const int has_cap, T cap, T inv_cap,
                                  const int has_w, double *A_out, double *Ad_out) {
    double A = 0.0, Ad = 0.0;
#pragma omp simd reduction(+ : A, Ad)
    for (int64_t j = 0; j < n; j++) {
        double a = (has_w ? w[j] : 1.0) * (keep * (double)t[j] + uni);
        double d = (double)FN(capped)(z[j], has_cap, cap, inv_cap) - (double)m; /* in double: float32 differences can overflow */
        A += a;
        Ad += a == 0.0 ? 0.0 : a * d;
    }
    *A_out = A;
    *Ad_out = Ad;
}

static void FN(row_probdot)(const T *z, const T *t, int64_t n, T m, const double *w,
                            const FN(consts) *k, double *A, double *Ad) {
    if (k->has_cap) {
        if (k->has_w) FN(row_probdot_)(z, t, n, m, w, k->keep, k->uni, 1, k->cap, k->inv_cap, 1, A, Ad);
        else FN(row_probdot_)(z, t, n, m, w, k->keep, k->uni, 1, k->cap, k->inv_cap, 0, A, Ad);
    } else {
        if (k->has_w) FN(row_probdot_)(z, t, n, m, w, k->keep, k->uni, 0, k->cap, k->inv_cap, 1, A, Ad);
        else FN(row_probdot_)(z, t, n, m, w, k->keep, k->uni, 0, k->cap, k->inv_cap, 0, A, Ad);
    }
}

/* g_j = scale * chain_j * (K * p_j - a_j) with a_j = uni * w_j (integer targets; the label's
 * own entry is written by the caller) or a_j = w_j * (keep * t_j + uni) (t != NULL). g may be
 * z itself: each element is read before it is written. */
CECE_INLINE void FN(row_grad_)(const T *z, const T *t, T *g, int64_t n, T m, T log_s, T K,
                               T scale, T keep, T uni, const double *w, const int has_cap, T cap,
                               T inv_cap, const int has_w, const int has_t) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        T zc = FN(capped)(z[j], has_cap, cap, inv_cap);
        T p = VEXP((zc - m) - log_s);
        T wj = has_w ? (T)w[j] : (T)1;
        T a = has_t ? wj * (keep * t[j] + uni) : wj * uni;
        g[j] = scale * ((K * p - a) * FN(cap_chain)(zc, has_cap, inv_cap));
    }
}

static void FN(row_grad)(const T *z, const T *t, T *g, int64_t n, T m, T log_s, T K, T scale,
                         const double *w, const FN(consts) *k) {
    T keep = (T)k->keep, uni = (T)k->uni, cap = k->cap, inv = k->inv_cap;
#define CECE_ROW_GRAD(HC, HW, HT) FN(row_grad_)(z, t, g, n, m, log_s, K, scale, keep, uni, w, HC, cap, inv, HW, HT)
    if (t) {
        if (k->has_cap) { if (k->has_w) CECE_ROW_GRAD(1, 1, 1); else CECE_ROW_GRAD(1, 0, 1); }
        else { if (k->has_w) CECE_ROW_GRAD(0, 1, 1); else CECE_ROW_GRAD(0, 0, 1); }
    } else {
        if (k->has_cap) { if (k->has_w) CECE_ROW_GRAD(1, 1, 0); else CECE_ROW_GRAD(1, 0, 0); }
        else { if (k->has_w) CECE_ROW_GRAD(0, 1, 0); else CECE_ROW_GRAD(0, 0, 0); }
    }
#undef CECE_ROW_GRAD
}

/* Pass 1 over a row: online max m and S = sum_j exp(z_j - m), CECE_CHUNK logits at a time,
 * so the row streams from memory once and each chunk's second look hits L1. S is rescaled
 * when a later chunk raises the max. With `e` set, also stores e_j = exp(z_j - ref) and each
 * chunk's reference `ref` (the running max then, so e_j <= 1) for the gradient pass, which
 * then needs no exp of its own. A row of only -inf (and NaN) gets S = NaN, as the maths.
 *
 * The exps of a chunk are summed in CECE_LANES(T) float lanes of T, each taking one value per
 * block (at most CECE_CHUNK / CECE_LANES adds, 16 for float), and the lanes in float64 in a
 * fixed order: no per-element conversion to double, and the same bits for any thread count.
 * While it computes a block it prefetches the block one chunk ahead, the next chunk's (or
 * row's) logits, so that the max pass over that chunk finds them in cache: the memory
 * stream overlaps the exp arithmetic instead of alternating with it. */
#define CECE_LANES (256 / (int64_t)sizeof(T)) /* four cache lines */

/* Into L1 for float; into L2 for double, whose chunk is twice the bytes (measured: L1
 * prefetches of double rows ran out of line-fill buffers and were ~25% slower). */
CECE_INLINE void FN(prefetch_block)(const T *z) {
    for (int64_t l = 0; l < CECE_LANES; l += 64 / (int64_t)sizeof(T))
        __builtin_prefetch(z + CECE_CHUNK + l, 0, sizeof(T) == 4 ? 3 : 2);
}

/* A row's running sums of exps, kept apart as (ones, rest): how many terms are exactly e^0 = 1
 * (the maxima; x == 0 picks them) and the sum of all the others, so that the small terms of
 * a confident row are not rounded away against the 1. Each chunk's CECE_LANES lanes of T are
 * folded (in a fixed order) into CECE_ROW_ACC float64 accumulators, added up once a row. */
#define CECE_ROW_ACC 16
typedef struct {
    double ones[CECE_ROW_ACC], rest[CECE_ROW_ACC];
} FN(row_sums);

CECE_INLINE void FN(chunk_sumexp_)(const T *z, T *e, int64_t n, T ref, FN(row_sums) *acc,
                                   const int has_cap, T cap, T inv_cap, const int store,
                                   const int count_ones) {
    T lane[CECE_LANES], lane1[CECE_LANES];
    for (int64_t i = 0; i < CECE_LANES; i++) lane[i] = lane1[i] = 0;
    int64_t j0 = 0;
    for (; j0 + CECE_LANES <= n; j0 += CECE_LANES) {
        FN(prefetch_block)(z + j0);
#pragma omp simd
        for (int64_t i = 0; i < CECE_LANES; i++) {
            T x = FN(capped)(z[j0 + i], has_cap, cap, inv_cap) - ref;
            T v = VEXPS(x);
            if (store) e[j0 + i] = v;
            if (count_ones) {
                T other = x != (T)0 ? (T)1 : (T)0; /* NaN is no max: it goes to the rest */
                lane[i] += v * other;
                lane1[i] += (T)1 - other;
            } else {
                lane[i] += v;
            }
        }
    }
    FN(prefetch_block)(z + j0);
#pragma omp simd
    for (int64_t i = 0; i < n - j0; i++) {
        T x = FN(capped)(z[j0 + i], has_cap, cap, inv_cap) - ref;
        T v = VEXPS(x);
        if (store) e[j0 + i] = v;
        if (count_ones) {
            T other = x != (T)0 ? (T)1 : (T)0;
            lane[i] += v * other;
            lane1[i] += (T)1 - other;
        } else {
            lane[i] += v;
        }
    }
    /* fold the lanes in halves down to CECE_ROW_ACC, then into the float64 accumulators */
    for (int64_t w = CECE_LANES / 2; w >= CECE_ROW_ACC; w /= 2) {
#pragma omp simd
        for (int64_t i = 0; i < w; i++) {
            lane[i] += lane[i + w];
            lane1[i] += lane1[i + w];
        }
    }
#pragma omp simd
    for (int64_t i = 0; i < CECE_ROW_ACC; i++) {
        acc->rest[i] += (double)lane[i];
        acc->ones[i] += (double)lane1[i];
    }
}

/* The row's max m, S = sum_j exp(z_j - m) and U = S - 1, computed apart as (ones - 1) + rest
 * so that log S = log1p(U) keeps its relative accuracy when one logit dominates and the loss
 * is tiny. */
static void FN(row_online)(const T *z, int64_t C, const FN(consts) *k, T *e, T *chunk_ref,
                           T *m_out, double *S_out, double *U_out) {
    T m = -(T)INFINITY;
    FN(row_sums) acc;
    for (int64_t i = 0; i < CECE_ROW_ACC; i++) acc.ones[i] = acc.rest[i] = 0.0;
    for (int64_t c0 = 0, ci = 0; c0 < C; c0 += CECE_CHUNK, ci++) {
        const int64_t n = C - c0 < CECE_CHUNK ? C - c0 : CECE_CHUNK;
        T cm = FN(row_max)(z + c0, n);
        if (k->has_cap) cm = FN(capped)(cm, 1, k->cap, k->inv_cap); /* softcap is monotonic */
        if (cm > m) { /* rescale; the old maxima are ones no more */
            const double f = exp((double)m - (double)cm);
            for (int64_t i = 0; i < CECE_ROW_ACC; i++) {
                acc.rest[i] = (acc.ones[i] + acc.rest[i]) * f;
                acc.ones[i] = 0.0;
            }
            m = cm;
        }
        /* While only -inf has been seen, measure from 0: -inf gives 0 and NaN stays NaN. */
        const T ref = m == -(T)INFINITY ? (T)0 : m;
        /* Only a chunk that holds the running max can hold terms exactly 1: the others take
         * the plain loop. */
        const int holds_max = cm == ref;
        T *ec = e ? e + c0 : NULL;
        if (e) chunk_ref[ci] = ref;
#define CECE_CHUNK_SUMEXP(HC, ST, ONES) \
    FN(chunk_sumexp_)(z + c0, ec, n, ref, &acc, HC, k->cap, k->inv_cap, ST, ONES)
        if (k->has_cap) {
            if (e) { if (holds_max) CECE_CHUNK_SUMEXP(1, 1, 1); else CECE_CHUNK_SUMEXP(1, 1, 0); }
            else { if (holds_max) CECE_CHUNK_SUMEXP(1, 0, 1); else CECE_CHUNK_SUMEXP(1, 0, 0); }
        } else {
            if (e) { if (holds_max) CECE_CHUNK_SUMEXP(0, 1, 1); else CECE_CHUNK_SUMEXP(0, 1, 0); }
            else { if (holds_max) CECE_CHUNK_SUMEXP(0, 0, 1); else CECE_CHUNK_SUMEXP(0, 0, 0); }
        }
#undef CECE_CHUNK_SUMEXP
    }
    double ones = 0.0, rest = 0.0;
    for (int64_t i = 0; i < CECE_ROW_ACC; i++) {
        ones += acc.ones[i];
        rest += acc.rest[i];
    }
    *m_out = m;
    if (m == -(T)INFINITY) {
        *S_out = *U_out = NAN;
    } else {
        *S_out = ones + rest;
        *U_out = (ones - 1.0) + rest;
    }
}

/* The gradient from the stored e_j: g_j = scale * (K * e_j * exp(ref_chunk - lse) - a_j). */
CECE_INLINE void FN(chunk_grad_stored_)(T *g, const T *t, int64_t n, T Kf, T scale, T keep,
                                        T uni, const double *w, const int has_w,
                                        const int has_t) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        T wj = has_w ? (T)w[j] : (T)1;
        T a = has_t ? wj * (keep * t[j] + uni) : wj * uni;
        g[j] = scale * (Kf * g[j] - a);
    }
}

static void FN(row_grad_stored)(T *g, const T *t, int64_t C, const T *chunk_ref, double lse,
                                double K, T scale, const double *w, const FN(consts) *k) {
    const T keep = (T)k->keep, uni = (T)k->uni;
    for (int64_t c0 = 0, ci = 0; c0 < C; c0 += CECE_CHUNK, ci++) {
        const int64_t n = C - c0 < CECE_CHUNK ? C - c0 : CECE_CHUNK;
        const double f = K * exp((double)chunk_ref[ci] - lse);
        if (!t && k->uni == 0.0) { /* no target mass but the label's (written by the caller) */
            const T sf = (T)((double)scale * f);
            T *gc = g + c0;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) gc[j] *= sf;
            continue;
        }
        const T Kf = (T)f;
        const T *tc = t ? t + c0 : NULL;
        const double *wc = w ? w + c0 : NULL;
        if (t) {
            if (w) FN(chunk_grad_stored_)(g + c0, tc, n, Kf, scale, keep, uni, wc, 1, 1);
            else FN(chunk_grad_stored_)(g + c0, tc, n, Kf, scale, keep, uni, wc, 0, 1);
        } else {
            if (w) FN(chunk_grad_stored_)(g + c0, tc, n, Kf, scale, keep, uni, wc, 1, 0);
            else FN(chunk_grad_stored_)(g + c0, tc, n, Kf, scale, keep, uni, wc, 0, 0);
        }
    }
}

/* Per-position loss from the row statistics; also K = A + 2 * z_loss * lse for the gradient. */
static inline double FN(position_loss)(double A, double Ad, double log_s, double lse,
                                       const FN(consts) *k, double *K) {
    double loss = A * log_s - Ad;
    *K = A;
    if (k->z_loss > 0.0) { /* skipped at 0 so that 0 * inf cannot make a NaN */
        loss += k->z_loss * lse * lse;
        *K += 2.0 * k->z_loss * lse;
    }
    return loss;
}

/* K * p_y - a_y for the label's own entry. When the label is a max (dy = 0) p_y = 1 / S and
 * the difference is taken as ((K - a_y) - a_y * U) / S: no cancellation however close p_y
 * is to 1. Branch-free, for the tiles' vector loop too. */
CECE_INLINE double FN(label_grad)(double K, double ay, double dy, double log_s, double S,
                                  double U) {
    double general = K * cece_exp_f64(dy - log_s) - ay;
    double at_max = ((K - ay) - ay * U) / S;
    return dy == 0.0 ? at_max : general;
}

/* Rows of C >= CECE_SMALL_C logits: vectorised along the row. */
static void FN(ce_rows)(const cece_ce_args *a, const FN(consts) *k, int64_t p0, int64_t p1,
                        cece_sums *acc, int64_t *bad) {
    const int64_t C = a->classes;
    const T *logits = (const T *)a->logits;
    const T *probs = (const T *)a->probs;
    T *grad = (T *)a->grad;
    T *losses = (T *)a->losses;
    const double *w = a->class_weight;
    const int store = grad && k->store_exp && (C + CECE_CHUNK - 1) / CECE_CHUNK <= CECE_MAX_CHUNKS;
    T chunk_ref[CECE_MAX_CHUNKS];
    for (int64_t p = p0; p < p1; p++) {
        const T *z = logits + p * C;
        const T *t = probs ? probs + p * C : NULL;
        T *g = grad ? grad + p * C : NULL;
        int64_t y;
        double s, wy;
        const int lane = (int)((p - p0) % CECE_SUM_LANES);
        acc->den[lane] += cece_position_weight(a, p, &y, &s, &wy);
        if (y == CECE_IGNORED || y == CECE_BAD) {
            if (y == CECE_BAD && p < *bad) *bad = p;
            if (losses) losses[p] = 0;
            if (g) for (int64_t j = 0; j < C; j++) g[j] = 0;
            continue;
        }
        /* Read before a stored pass may overwrite the row in place. */
        const T zy = t ? (T)0 : FN(capped)(z[y], k->has_cap, k->cap, k->inv_cap);
        T m;
        double S, U;
        FN(row_online)(z, C, k, store ? g : NULL, chunk_ref, &m, &S, &U);
        double log_s = log1p(U);
        double lse = (double)m + log_s;
        double A, Ad, dy = 0.0, ay = 0.0;
        if (t) {
            FN(row_probdot)(z, t, C, m, w, k, &A, &Ad);
        } else {
            double label_part = k->keep * wy;
            dy = (double)zy - (double)m;
            ay = label_part + k->uni * wy;
            A = label_part + k->uni * k->weight_sum;
            Ad = label_part == 0.0 ? 0.0 : label_part * dy;
            if (k->uni > 0.0) Ad += FN(row_wdot)(z, C, m, w, k);
        }
        double K;
        double loss = FN(position_loss)(A, Ad, log_s, lse, k, &K);
        if (losses) losses[p] = (T)(s * loss);
        acc->loss[lane] += s * loss;
        if (!g) continue;
        double scale = s * k->grad_scale;
        if (store) FN(row_grad_stored)(g, t, C, chunk_ref, lse, K, (T)scale, w, k);
        else FN(row_grad)(z, t, g, C, m, (T)log_s, (T)K, (T)scale, w, k);
        if (!t) { /* the label's own entry, in float64 */
            double chain = k->has_cap ? 1.0 - ((double)zy / k->cap) * ((double)zy / k->cap) : 1.0;
            g[y] = (T)(scale * chain * FN(label_grad)(K, ay, dy, log_s, S, U));
        }
    }
}

/* ---- tiles: nw <= CECE_TILE neighbouring positions, class c of position i at zb[c * stride + i] */

/* Per-tile state, one entry per position of the tile. */
typedef struct {
    int64_t y[CECE_TILE];                  /* label status (cece_work.h) */
    double s[CECE_TILE], wy[CECE_TILE];    /* sample weight, class weight of the label */
    double dw[CECE_TILE];                  /* share of "mean"'s denominator */
    double A[CECE_TILE], Ad[CECE_TILE];    /* smoothing / probability-target dot products */
    double loss[CECE_TILE], gy[CECE_TILE]; /* s * l; the label's own gradient entry */
    T m[CECE_TILE], zy[CECE_TILE], U[CECE_TILE], log_s[CECE_TILE]; /* U = S - 1 */
    T K[CECE_TILE], KS[CECE_TILE], scale[CECE_TILE], valid[CECE_TILE];
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
    for (int64_t i = 0; i < nw; i++) m[i] = -(T)INFINITY;
    for (int64_t c = 0; c < C; c++) {
        const T *zc = zb + c * inner;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) m[i] = zc[i] > m[i] ? zc[i] : m[i];
    }
}

/* U_i = S_i - 1 with S_i = sum_c exp(z_ci - m_i), from the exps kept apart as in the rows
 * (chunk_sumexp_): those exactly 1 counted, the others summed in T. Up to CECE_SMALL_C
 * classes (the small-C tiles) that is all in T; beyond, each block of CECE_SMALL_C classes is
 * added to float64 sums (one conversion per block and position, however many classes the
 * (outer, C, inner) layout has). With `eb` set (no softcap), also stores each exp there for
 * the gradient pass, as the row kernel does. (Leaving the label's own term out instead of
 * counting the ones was measured 4-20% slower: three running selects against two sums.) */
CECE_INLINE void FN(tile_block_sumexp_)(const T *zb, T *eb, int64_t c0, int64_t c1, int64_t inner,
                                        int64_t nw, const T *m, T *rest, T *ones,
                                        const int has_cap, T cap, T inv_cap, const int store) {
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
                                  const int store) {
    T rest[CECE_TILE], ones[CECE_TILE];
    if (C <= CECE_SMALL_C) {
        FN(tile_block_sumexp_)(zb, eb, 0, C, inner, nw, m, rest, ones, has_cap, cap, inv_cap, store);
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) U[i] = (ones[i] - 1) + rest[i];
        return;
    }
    double R[CECE_TILE], O[CECE_TILE];
    for (int64_t i = 0; i < nw; i++) R[i] = O[i] = 0.0;
    for (int64_t c0 = 0; c0 < C; c0 += CECE_SMALL_C) {
        const int64_t c1 = C - c0 < CECE_SMALL_C ? C : c0 + CECE_SMALL_C;
        FN(tile_block_sumexp_)(zb, eb, c0, c1, inner, nw, m, rest, ones, has_cap, cap, inv_cap, store);
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
                            T *U, const FN(consts) *k) {
    if (eb) FN(tile_sumexp_)(zb, eb, C, inner, nw, m, U, 0, k->cap, k->inv_cap, 1);
    else if (k->has_cap) FN(tile_sumexp_)(zb, NULL, C, inner, nw, m, U, 1, k->cap, k->inv_cap, 0);
    else FN(tile_sumexp_)(zb, NULL, C, inner, nw, m, U, 0, k->cap, k->inv_cap, 0);
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
                                T uni, const int has_cap, T cap, T inv_cap, const int has_t) {
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
            T v = st->scale[i] * ((st->K[i] * p - a) * FN(cap_chain)(zz, has_cap, inv_cap));
            gc[i] = st->valid[i] != 0 ? v : (T)0;
        }
    }
}

/* The gradient from exps stored by tile_sumexp: g = scale * (K/S * e - a). */
CECE_INLINE void FN(tile_grad_stored_)(const T *tb, T *gb, int64_t C, int64_t inner, int64_t nw,
                                       const FN(tile_state) *st, const double *w, T keep, T uni,
                                       const int has_t) {
    for (int64_t c = 0; c < C; c++) {
        const T *tc = has_t ? tb + c * inner : NULL;
        T *gc = gb + c * inner;
        T wc = w ? (T)w[c] : (T)1;
#pragma omp simd
        for (int64_t i = 0; i < nw; i++) {
            T a = has_t ? wc * (keep * tc[i] + uni) : wc * uni;
            T v = st->scale[i] * (st->KS[i] * gc[i] - a);
            gc[i] = st->valid[i] != 0 ? v : (T)0;
        }
    }
}

static void FN(tile_grad)(const T *zb, const T *tb, T *gb, int64_t C, int64_t inner, int64_t nw,
                          const FN(tile_state) *st, const double *w, const FN(consts) *k) {
    T keep = (T)k->keep, uni = (T)k->uni;
    if (k->has_cap) {
        if (tb) FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 1, k->cap, k->inv_cap, 1);
        else FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 1, k->cap, k->inv_cap, 0);
    } else {
        if (tb) FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 0, k->cap, k->inv_cap, 1);
        else FN(tile_grad_)(zb, tb, gb, C, inner, nw, st, w, keep, uni, 0, k->cap, k->inv_cap, 0);
    }
}

/* The per-position finish, branch-free so that it vectorises like the rest: loss, and with
 * `want_grad` the gradient's per-position factors and the label's own entry. In T: a float32
 * loss needs no float64 log, and a vector of positions is twice as wide. The label's entry
 * K * p_y - a_y is taken as ((K - a_y) - a_y * U) / S when the label is a max (p_y = 1 / S),
 * so that it does not cancel however close p_y is to 1. */
CECE_INLINE void FN(tile_finish_)(const FN(consts) *k, int64_t nw, int labels,
                                  FN(tile_state) *st, const int want_grad, const int has_dot) {
    const T keep = (T)k->keep, uni = (T)k->uni, W = (T)k->weight_sum, zl = (T)k->z_loss;
    const double gs = k->grad_scale; /* 1 / D: may not fit a float when D is tiny */
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
        T wy = (T)st->wy[i];
        T label_part = keep * wy;
        T A = labels ? label_part + uni * W : (T)st->A[i];
        T label_term = label_part == 0 ? (T)0 : label_part * dy;
        T Ad = labels ? label_term + (has_dot ? (T)st->Ad[i] : (T)0) : (T)st->Ad[i];
        T zterm = has_zl ? zl * lse * lse : (T)0; /* skipped at 0: 0 * inf would be NaN */
        T loss = A * log_s - Ad + zterm;
        int valid = st->valid[i] != 0;
        st->loss[i] = valid ? st->s[i] * (double)loss : 0.0;
        if (want_grad) {
            T K = A + (has_zl ? 2 * zl * lse : (T)0);
            T scale = (T)(st->s[i] * gs);
            T ay = label_part + uni * wy;
            T chain = has_cap ? 1 - (zy * inv_cap) * (zy * inv_cap) : (T)1;
            T inv_s = 1 / (U + 1);
            T general = K * VEXPS(dy - log_s) - ay;
            /* K - a_y without forming K: it is small when the label holds nearly all the
             * target mass, and K's own rounding would swamp it */
            T K_minus_ay = (T)(k->uni * (k->weight_sum - st->wy[i])) +
                           (has_zl ? 2 * zl * lse : (T)0);
            T at_max = (K_minus_ay - ay * U) * inv_s;
            st->gy[i] = (double)(scale * chain * (dy == 0 ? at_max : general));
            st->scale[i] = valid ? scale : (T)0;
            st->K[i] = valid ? K : (T)0;
            st->KS[i] = valid ? K * inv_s : (T)0; /* for the gradient from stored exps */
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
            st->scale[i] = valid ? scale : (T)0;
            st->K[i] = valid ? (T)1 : (T)0;
            st->KS[i] = valid ? inv_s : (T)0;
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
                          cece_sums *acc, int64_t *bad) {
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
    /* Store the exps in gb for the gradient, unless gb is zb and a later pass still needs
     * the logits (the same rule as the rows' k->store_exp). */
    const int store = gb && !k->has_cap && (gb != zb || (labels && k->uni == 0.0));
    FN(tile_sumexp)(zb, store ? gb : NULL, C, stride, nw, st.m, st.U, k);
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
    if (store) {
        if (tb) FN(tile_grad_stored_)(tb, gb, C, stride, nw, &st, a->class_weight, (T)k->keep, (T)k->uni, 1);
        else FN(tile_grad_stored_)(tb, gb, C, stride, nw, &st, a->class_weight, (T)k->keep, (T)k->uni, 0);
    } else {
        FN(tile_grad)(zb, tb, gb, C, stride, nw, &st, a->class_weight, k);
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
    FN(tile_core)(a, k, (const T *)a->logits + offset,
                  a->probs ? (const T *)a->probs + offset : NULL,
                  a->grad ? (T *)a->grad + offset : NULL, inner, p0, p1 - p0, NULL, acc, bad);
}

/* Rows shorter than CECE_SMALL_C: a vector along a row would be mostly empty, so blocks of
 * CECE_TILE rows are transposed into L1 (cece_columns.h) and run as tiles, vectorised across
 * rows. */
static void FN(ce_small_rows)(const cece_ce_args *a, const FN(consts) *k, int64_t p0, int64_t p1,
                              cece_sums *acc, int64_t *bad) {
    const int64_t C = a->classes;
    T zt[CECE_SMALL_C * CECE_TILE], tt[CECE_SMALL_C * CECE_TILE], gt[CECE_SMALL_C * CECE_TILE];
    T m[CECE_TILE];
    for (int64_t b0 = p0; b0 < p1; b0 += CECE_TILE) {
        const int64_t nw = p1 - b0 < CECE_TILE ? p1 - b0 : CECE_TILE;
        const T *t = a->probs ? (const T *)a->probs + b0 * C : NULL;
        T *g = a->grad ? (T *)a->grad + b0 * C : NULL;
        ROWS_TO_TILE_MAX((const T *)a->logits + b0 * C, C, nw, CECE_TILE, zt, m);
        if (t) ROWS_TO_TILE(t, C, nw, CECE_TILE, tt);
        FN(tile_core)(a, k, zt, t ? tt : NULL, g ? gt : NULL, CECE_TILE, b0, nw, m, acc, bad);
        if (g) TILE_TO_ROWS(gt, C, nw, CECE_TILE, g);
    }
}

/* ---- small C, the common call: a few vectors of rows at a time ------------------------ */

/* Integer labels, no weights, smoothing, z-loss or softcap, C < CECE_SMALL_C: the same maths
 * as tile_core, leaner. A block is CECE_SMALL_BLOCK rows (a few vectors of T), transposed by
 * gathers into a tile that stays in L1; the loss is summed across the item's blocks in float64
 * vector lanes and folded into the item's lanes once, at the end (the denominator here is a
 * count of valid positions, exact in any order). */
#ifndef CECE_SMALL_BLOCK_VECS
#define CECE_SMALL_BLOCK_VECS 2
#endif
#define CECE_SMALL_BLOCK (CECE_SMALL_BLOCK_VECS * 64 / (int64_t)sizeof(T))

CECE_INLINE void FN(small_plain_)(const cece_ce_args *a, const FN(consts) *k, int64_t p0,
                                  int64_t p1, cece_sums *acc, int64_t *bad, const int want_grad) {
    enum { B = CECE_SMALL_BLOCK };
    const int64_t C = a->classes, ignore = a->ignore_index;
    const int64_t *labels = a->labels;
    T *losses = (T *)a->losses;
    const T scale = (T)k->grad_scale;
    T zt[CECE_SMALL_C * B], et[CECE_SMALL_C * B], m[B];
    T zy[B], valid[B], rest[B], ones[B], loss[B], gy[B], factor[B];
    int64_t y[B];
    double loss_sum[B], count[B];
    for (int64_t l = 0; l < B; l++) loss_sum[l] = count[l] = 0.0;
    for (int64_t b0 = p0; b0 < p1; b0 += B) {
        const int64_t nw = p1 - b0 < B ? p1 - b0 : B;
        ROWS_TO_TILE_MAX((const T *)a->logits + b0 * C, C, nw, B, zt, m);
        int64_t nbad = 0;
#pragma omp simd reduction(+ : nbad)
        for (int64_t l = 0; l < B; l++) {
            const int64_t label = l < nw ? labels[b0 + (l < nw ? l : 0)] : ignore;
            /* As cece_position_weight: ignore_index first, then the range. */
            y[l] = label == ignore ? CECE_IGNORED : ((uint64_t)label < (uint64_t)C ? label : CECE_BAD);
            valid[l] = y[l] >= 0 ? (T)1 : (T)0;
            nbad += y[l] == CECE_BAD;
        }
        if (nbad > 0)
            for (int64_t l = 0; l < nw; l++)
                if (y[l] == CECE_BAD && b0 + l < *bad) { *bad = b0 + l; break; }
#pragma omp simd
        for (int64_t l = 0; l < B; l++) {
            const T v = zt[(y[l] >= 0 ? y[l] : 0) * B + l];
            zy[l] = y[l] >= 0 ? v : (T)0;
            rest[l] = ones[l] = 0;
        }
        for (int64_t c = 0; c < C; c++) {
#pragma omp simd
            for (int64_t l = 0; l < B; l++) {
                T x = zt[c * B + l] - m[l];
                T e = VEXPS(x);
                if (want_grad) et[c * B + l] = e;
                T other = x != (T)0 ? (T)1 : (T)0; /* NaN is no max: it goes to the rest */
                rest[l] += e * other;
                ones[l] += (T)1 - other;
            }
        }
#pragma omp simd
        for (int64_t l = 0; l < B; l++) {
            T U = (ones[l] - 1) + rest[l];
            T log_s = VLOG1P(U);
            T dy = zy[l] - m[l];
            loss[l] = valid[l] != 0 ? log_s - dy : (T)0;
            loss_sum[l] += (double)loss[l];
            count[l] += (double)valid[l];
            if (want_grad) {
                T inv_s = 1 / (U + 1);
                T general = VEXPS(dy - log_s) - 1;
                T at_max = -U * inv_s; /* p_y - 1 at a max, without cancellation */
                gy[l] = scale * (dy == 0 ? at_max : general);
                factor[l] = scale * inv_s;
            }
        }
        if (losses)
            for (int64_t l = 0; l < nw; l++) losses[b0 + l] = loss[l];
        if (!want_grad) continue;
        for (int64_t c = 0; c < C; c++) {
#pragma omp simd
            for (int64_t l = 0; l < B; l++) /* a select: an ignored row's NaN must not pass */
                et[c * B + l] = valid[l] != 0 ? et[c * B + l] * factor[l] : (T)0;
        }
        for (int64_t l = 0; l < nw; l++)
            if (y[l] >= 0) et[y[l] * B + l] = gy[l];
        TILE_TO_ROWS(et, C, nw, B, (T *)a->grad + b0 * C);
    }
    /* position p0 + i went to loss_sum[i % B]; B is a multiple of CECE_SUM_LANES */
    for (int64_t l = 0; l < B; l++) {
        acc->loss[l % CECE_SUM_LANES] += loss_sum[l];
        acc->den[l % CECE_SUM_LANES] += count[l];
    }
}

static void FN(ce_small_plain)(const cece_ce_args *a, const FN(consts) *k, int64_t p0, int64_t p1,
                               cece_sums *acc, int64_t *bad) {
    if (a->grad) FN(small_plain_)(a, k, p0, p1, acc, bad, 1);
    else FN(small_plain_)(a, k, p0, p1, acc, bad, 0);
}

#undef CECE_SMALL_BLOCK

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
        const int lane = (int)((p - p0) % CECE_SUM_LANES);
        acc->den[lane] += cece_position_weight(a, p, &y, &s, &wy);
        if (y == CECE_IGNORED || y == CECE_BAD) {
            if (y == CECE_BAD && p < *bad) *bad = p;
            if (losses) losses[p] = 0;
            if (g) for (int64_t j = 0; j < C; j++) g[j * inner] = 0;
            continue;
        }
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

/* ---- entry points ---------------------------------------------------------------------- */

/* One work item: its positions' loss and denominator sums, in a fixed order (cece_sums). */
static void FN(ce_item)(const cece_ce_args *a, const FN(consts) *k, const cece_partition *part,
                        int64_t it, double *partial, int64_t *bad) {
    int64_t p0, p1;
    cece_item_range(part, a->inner, it, &p0, &p1);
    cece_sums acc;
    cece_sums_clear(&acc);
    if (!a->from_logits) FN(ce_prob_inputs)(a, k, p0, p1, &acc, bad);
    else if (a->inner == 1 && a->classes < CECE_SMALL_C && k->plain) FN(ce_small_plain)(a, k, p0, p1, &acc, bad);
    else if (a->inner == 1 && a->classes < CECE_SMALL_C) FN(ce_small_rows)(a, k, p0, p1, &acc, bad);
    else if (a->inner == 1) FN(ce_rows)(a, k, p0, p1, &acc, bad);
    else FN(ce_tile)(a, k, p0, p1, &acc, bad);
    partial[2 * it] = cece_lanes_total(acc.loss);
    partial[2 * it + 1] = cece_lanes_total(acc.den);
}

int FN(cross_entropy)(const cece_ce_args *a, cece_ce_result *res) {
    const cece_partition part = cece_partition_of(a->outer, a->classes, a->inner);
    FN(consts) k;
    k.keep = 1.0 - a->label_smoothing;
    k.uni = a->label_smoothing / (double)a->classes;
    k.weight_sum = (double)a->classes;
    if (a->class_weight) {
        k.weight_sum = 0.0;
        for (int64_t j = 0; j < a->classes; j++) k.weight_sum += a->class_weight[j];
    }
    k.z_loss = a->z_loss;
    k.grad_scale = a->grad_scale;
    k.has_cap = a->softcap > 0.0;
    k.has_w = a->class_weight != NULL;
    k.cap = k.has_cap ? (T)a->softcap : (T)1;
    k.inv_cap = k.has_cap ? (T)(1.0 / a->softcap) : (T)1;
    /* The gradient pass can reuse exps stored in grad by the first pass, unless it still
     * needs the logits that an in-place first pass would overwrite (softcap's chain rule,
     * the smoothing and probability-target dot products). */
    k.plain = a->labels != NULL && !a->class_weight && !a->sample_weight &&
              a->label_smoothing == 0.0 && a->z_loss == 0.0 && !k.has_cap;
    k.store_exp = a->grad != NULL && !k.has_cap &&
                  (a->grad != a->logits || (a->labels != NULL && k.uni == 0.0));

    double stack_partial[2 * CECE_STACK_ITEMS];
    double *partial = part.items <= CECE_STACK_ITEMS
                          ? stack_partial
                          : (double *)malloc(2 * (size_t)part.items * sizeof(double));
    if (!partial) return CECE_ERR_NOMEM;
    int64_t bad = INT64_MAX;
    const int threads = cece_threads_for(a->num_threads, a->outer * a->classes * a->inner, part.items);
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : bad)
        for (int64_t it = 0; it < part.items; it++) FN(ce_item)(a, &k, &part, it, partial, &bad);
    } else { /* no parallel region at all: a small call pays nothing for OpenMP */
        for (int64_t it = 0; it < part.items; it++) FN(ce_item)(a, &k, &part, it, partial, &bad);
    }
    res->loss_sum = 0.0;
    res->denominator = 0.0;
    for (int64_t it = 0; it < part.items; it++) {
        res->loss_sum += partial[2 * it];
        res->denominator += partial[2 * it + 1];
    }
    res->bad_position = bad == INT64_MAX ? -1 : bad;
    if (partial != stack_partial) free(partial);
    return CECE_OK;
}

static void FN(normalize_rows)(int op, int64_t C, const T *x, T *out, int64_t p0, int64_t p1,
                               const FN(consts) *k) {
    for (int64_t p = p0; p < p1; p++) {
        const T *z = x + p * C;
        T m;
        double S, U;
        FN(row_online)(z, C, k, NULL, NULL, &m, &S, &U);
        double log_s = log1p(U);
        if (op == CECE_LOGSUMEXP) {
            out[p] = (T)((double)m + log_s);
            continue;
        }
        T *y = out + p * C;
        T ls = (T)log_s;
        if (op == CECE_LOG_SOFTMAX) {
#pragma omp simd
            for (int64_t j = 0; j < C; j++) y[j] = (z[j] - m) - ls;
        } else {
#pragma omp simd
            for (int64_t j = 0; j < C; j++) y[j] = VEXP((z[j] - m) - ls);
        }
    }
}

/* The normalisations of nw positions whose logits sit at zb[c * stride + i] (m: their maxima
 * if known, else NULL): log_softmax / softmax written to yb in the same layout, logsumexp to
 * lse[i]. yb may be zb: each element is read before it is written. */
static void FN(normalize_core)(int op, int64_t C, int64_t stride, int64_t nw, const T *zb,
                               const T *m_ready, T *yb, T *lse) {
    T m[CECE_TILE], ls[CECE_TILE], U[CECE_TILE];
    if (m_ready) memcpy(m, m_ready, (size_t)nw * sizeof(T));
    else FN(tile_max)(zb, C, stride, nw, m);
    FN(tile_sumexp_)(zb, NULL, C, stride, nw, m, U, 0, (T)1, (T)1, 0);
#pragma omp simd
    for (int64_t i = 0; i < nw; i++) ls[i] = VLOG1P(U[i]);
    if (op == CECE_LOGSUMEXP) {
        for (int64_t i = 0; i < nw; i++) lse[i] = m[i] + ls[i];
        return;
    }
    for (int64_t c = 0; c < C; c++) {
        const T *zc = zb + c * stride;
        T *yc = yb + c * stride;
        if (op == CECE_LOG_SOFTMAX) {
#pragma omp simd
            for (int64_t i = 0; i < nw; i++) yc[i] = (zc[i] - m[i]) - ls[i];
        } else {
#pragma omp simd
            for (int64_t i = 0; i < nw; i++) yc[i] = VEXP((zc[i] - m[i]) - ls[i]);
        }
    }
}

static void FN(normalize_tile)(int op, int64_t C, int64_t inner, const T *x, T *out, int64_t p0,
                               int64_t p1) {
    const int64_t o = p0 / inner, offset = o * C * inner + (p0 - o * inner);
    FN(normalize_core)(op, C, inner, p1 - p0, x + offset, NULL, out + offset, out + p0);
}

/* Rows shorter than CECE_SMALL_C, transposed in blocks as for the cross-entropy. */
static void FN(normalize_small_rows)(int op, int64_t C, const T *x, T *out, int64_t p0,
                                     int64_t p1) {
    T zt[CECE_SMALL_C * CECE_TILE], m[CECE_TILE];
    for (int64_t b0 = p0; b0 < p1; b0 += CECE_TILE) {
        const int64_t nw = p1 - b0 < CECE_TILE ? p1 - b0 : CECE_TILE;
        ROWS_TO_TILE_MAX(x + b0 * C, C, nw, CECE_TILE, zt, m);
        FN(normalize_core)(op, C, CECE_TILE, nw, zt, m, zt, out + b0);
        if (op != CECE_LOGSUMEXP) TILE_TO_ROWS(zt, C, nw, CECE_TILE, out + b0 * C);
    }
}

static void FN(normalize_item)(int op, const cece_partition *part, int64_t C, int64_t inner,
                               const T *x, T *out, int64_t it, const FN(consts) *k) {
    int64_t p0, p1;
    cece_item_range(part, inner, it, &p0, &p1);
    if (inner == 1 && C < CECE_SMALL_C) FN(normalize_small_rows)(op, C, x, out, p0, p1);
    else if (inner == 1) FN(normalize_rows)(op, C, x, out, p0, p1, k);
    else FN(normalize_tile)(op, C, inner, x, out, p0, p1);
}

int FN(normalize)(int op, int64_t outer, int64_t C, int64_t inner, const T *x, T *out,
                  int num_threads) {
    const cece_partition part = cece_partition_of(outer, C, inner);
    const int threads = cece_threads_for(num_threads, outer * C * inner, part.items);
    FN(consts) k;
    memset(&k, 0, sizeof k); /* no softcap: plain max and sum of exp */
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t it = 0; it < part.items; it++) FN(normalize_item)(op, &part, C, inner, x, out, it, &k);
    } else {
        for (int64_t it = 0; it < part.items; it++) FN(normalize_item)(op, &part, C, inner, x, out, it, &k);
    }
    return CECE_OK;
}

void FN(exp_array)(const T *x, T *y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = VEXP(x[i]);
}

#undef FN
#undef CECE_PASTE
#undef CECE_PASTE_
