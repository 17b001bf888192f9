/* Rows of C >= CECE_SMALL_C logits (inner == 1): the online, chunked row pass.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

/* ---- rows: one position's logits are z[0..C) ---------------------------------------- */

#define CECE_LANES (256 / (int64_t)sizeof(T)) /* four cache lines */

/* The max of z[0..n), NaN skipped (-inf if nothing else). A long run in CECE_LANES lanes,
 * folded in a fixed order at the end: one running max is a chain of dependent vmax (4 cycles
 * each) that the loads of a chunk queue behind; four vectors of lanes overlap them. A short
 * one in the single running max, cheaper than the fold. */
CECE_INLINE T FN(row_max)(const T *z, int64_t n) {
    T m = -(T)INFINITY;
    if (n < 4 * CECE_LANES) {
#pragma omp simd reduction(max : m)
        for (int64_t j = 0; j < n; j++) m = z[j] > m ? z[j] : m;
        return m;
    }
    T lane[CECE_LANES];
    for (int64_t i = 0; i < CECE_LANES; i++) lane[i] = -(T)INFINITY;
    int64_t j0 = 0;
    for (; j0 + CECE_LANES <= n; j0 += CECE_LANES) {
#pragma omp simd
        for (int64_t i = 0; i < CECE_LANES; i++) lane[i] = z[j0 + i] > lane[i] ? z[j0 + i] : lane[i];
    }
#pragma omp simd
    for (int64_t i = 0; i < n - j0; i++) lane[i] = z[j0 + i] > lane[i] ? z[j0 + i] : lane[i];
    /* halves into fresh arrays (vector maxes), then the last eighth one by one */
    T half[CECE_LANES / 2], quarter[CECE_LANES / 4], eighth[CECE_LANES / 8];
    for (int64_t i = 0; i < CECE_LANES / 2; i++)
        half[i] = lane[i + CECE_LANES / 2] > lane[i] ? lane[i + CECE_LANES / 2] : lane[i];
    for (int64_t i = 0; i < CECE_LANES / 4; i++)
        quarter[i] = half[i + CECE_LANES / 4] > half[i] ? half[i + CECE_LANES / 4] : half[i];
    for (int64_t i = 0; i < CECE_LANES / 8; i++)
        eighth[i] = quarter[i + CECE_LANES / 8] > quarter[i] ? quarter[i + CECE_LANES / 8] : quarter[i];
    for (int64_t i = 0; i < CECE_LANES / 8; i++) m = eighth[i] > m ? eighth[i] : m;
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

/* g_j = chain_j * scale * (K p_j - a_j) with a_j = uni * w_j (integer targets; the label's
 * own entry is written by the caller) or a_j = w_j * (keep * t_j + uni) (t != NULL); the
 * factors as FN(scaled) says. g may be z itself: each element is read before it is written. */
CECE_INLINE void FN(row_grad_)(const T *z, const T *t, T *g, int64_t n, T m, T log_s, double K,
                               double scale, T keep, T uni, const double *w, const int has_cap,
                               T cap, T inv_cap, const int has_w, const int has_t,
                               const int wide) {
    const T sKt = (T)(scale * K), scalet = (T)scale;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        T zc = FN(capped)(z[j], has_cap, cap, inv_cap);
        T p = VEXP((zc - m) - log_s);
        T wj = has_w ? (T)w[j] : (T)1;
        T a = has_t ? wj * (keep * t[j] + uni) : wj * uni;
        T chain = FN(cap_chain)(zc, has_cap, inv_cap);
        if (wide) g[j] = FN(wide_entry)((K * (double)p - (double)a) * (double)chain, scale);
        else g[j] = (sKt * p - FN(scaled)(scalet, a)) * chain;
    }
}

static void FN(row_grad)(const T *z, const T *t, T *g, int64_t n, T m, T log_s, double K,
                         double scale, const double *w, const FN(consts) *k) {
    T keep = (T)k->keep, uni = (T)k->uni, cap = k->cap, inv = k->inv_cap;
    if (!FN(fits)(scale * K) || !FN(fits)(scale)) { /* rare: one loop with every option */
        FN(row_grad_)(z, t, g, n, m, log_s, K, scale, keep, uni, w, k->has_cap, cap, inv,
                      k->has_w, t != NULL, 1);
        return;
    }
#define CECE_ROW_GRAD(HC, HW, HT) FN(row_grad_)(z, t, g, n, m, log_s, K, scale, keep, uni, w, HC, cap, inv, HW, HT, 0)
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
/* Into L1 for float; into L2 for double, whose chunk is twice the bytes (measured: L1
 * prefetches of double rows ran out of line-fill buffers and were ~25% slower). */
CECE_INLINE void FN(prefetch_block)(const T *z) {
    for (int64_t l = 0; l < CECE_LANES; l += 64 / (int64_t)sizeof(T))
        __builtin_prefetch(z + CECE_CHUNK + l, 0, sizeof(T) == 4 ? 3 : 2);
}

/* The gradient's lines one chunk ahead, with intent to write: their read-for-ownership then
 * overlaps the arithmetic too (measured: forward+gradient 8-20% faster at C >= 1000). */
CECE_INLINE void FN(prefetch_block_for_write)(T *e) {
    for (int64_t l = 0; l < CECE_LANES; l += 64 / (int64_t)sizeof(T))
        __builtin_prefetch(e + CECE_CHUNK + l, 1, 3);
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
#ifdef BLOCKS_SUMEXP
    /* the level's own loop for long chunks; short rows (measured: 8-11% slower for 50-200
     * float32 classes) and the softcap's chunks take the portable one */
    if (!has_cap && n >= 4 * CECE_LANES) {
        j0 = n / CECE_LANES * CECE_LANES;
        BLOCKS_SUMEXP(z, e, n / CECE_LANES, ref, lane, lane1, store, count_ones);
    }
#endif
    for (; j0 + CECE_LANES <= n; j0 += CECE_LANES) {
        FN(prefetch_block)(z + j0);
        if (store) FN(prefetch_block_for_write)(e + j0);
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
    /* fold the lanes in halves down to CECE_ROW_ACC, then into the float64 accumulators;
     * fixed-size steps into fresh arrays, which the compiler keeps in registers (a fold in
     * place stalls on store forwarding) */
    T half[CECE_LANES / 2], half1[CECE_LANES / 2], quarter[CECE_ROW_ACC], quarter1[CECE_ROW_ACC];
    for (int64_t i = 0; i < CECE_LANES / 2; i++) {
        half[i] = lane[i] + lane[i + CECE_LANES / 2];
        half1[i] = lane1[i] + lane1[i + CECE_LANES / 2];
    }
    if (CECE_LANES / 2 > CECE_ROW_ACC) { /* float: 64 lanes, one more step */
        for (int64_t i = 0; i < CECE_ROW_ACC; i++) {
            quarter[i] = half[i] + half[i + CECE_ROW_ACC];
            quarter1[i] = half1[i] + half1[i + CECE_ROW_ACC];
        }
    } else {
        for (int64_t i = 0; i < CECE_ROW_ACC; i++) {
            quarter[i] = half[i];
            quarter1[i] = half1[i];
        }
    }
    for (int64_t i = 0; i < CECE_ROW_ACC; i++) {
        acc->rest[i] += (double)quarter[i];
        acc->ones[i] += (double)quarter1[i];
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
        if (cm > m) { /* rescale (nothing to rescale yet in the first chunk) */
            if (c0 > 0) {
                const double f = exp((double)m - (double)cm);
                for (int64_t i = 0; i < CECE_ROW_ACC; i++) { /* the old maxima are ones no more */
                    acc.rest[i] = (acc.ones[i] + acc.rest[i]) * f;
                    acc.ones[i] = 0.0;
                }
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
    const double ones = cece_sum16(acc.ones), rest = cece_sum16(acc.rest);
    *m_out = m;
    if (m == -(T)INFINITY) {
        *S_out = *U_out = NAN;
    } else {
        *S_out = ones + rest;
        *U_out = (ones - 1.0) + rest;
    }
}

/* The gradient from the stored e_j: g_j = scale * (Kf e_j - a_j), Kf = K exp(ref_chunk - lse),
 * the factors as FN(scaled) says. */
CECE_INLINE void FN(chunk_grad_stored_)(T *g, const T *t, int64_t n, double Kf, double scale,
                                        T keep, T uni, const double *w, const int has_w,
                                        const int has_t, const int wide) {
    const T sKft = (T)(scale * Kf), scalet = (T)scale;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        T wj = has_w ? (T)w[j] : (T)1;
        T a = has_t ? wj * (keep * t[j] + uni) : wj * uni;
        if (wide) g[j] = FN(wide_entry)(Kf * (double)g[j] - (double)a, scale);
        else g[j] = sKft * g[j] - FN(scaled)(scalet, a);
    }
}

/* scale = s / D in float64 (it may not fit a float, while scale * K does). */
static void FN(row_grad_stored)(T *g, const T *t, int64_t C, const T *chunk_ref, double lse,
                                double K, double scale, const double *w, const FN(consts) *k) {
    const T keep = (T)k->keep, uni = (T)k->uni;
    for (int64_t c0 = 0, ci = 0; c0 < C; c0 += CECE_CHUNK, ci++) {
        const int64_t n = C - c0 < CECE_CHUNK ? C - c0 : CECE_CHUNK;
        const double Kf = K * exp((double)chunk_ref[ci] - lse);
        const int wide = !FN(fits)(scale * Kf) || !FN(fits)(scale);
        T *gc = g + c0;
        const T *tc = t ? t + c0 : NULL;
        const double *wc = w ? w + c0 : NULL;
        if (wide) { /* rare: one loop with every option */
            FN(chunk_grad_stored_)(gc, tc, n, Kf, scale, keep, uni, wc, w != NULL, t != NULL, 1);
        } else if (!t && k->uni == 0.0) { /* no target mass but the label's (written apart) */
            const T sKft = (T)(scale * Kf);
#pragma omp simd
            for (int64_t j = 0; j < n; j++) gc[j] *= sKft;
        } else if (t) {
            if (w) FN(chunk_grad_stored_)(gc, tc, n, Kf, scale, keep, uni, wc, 1, 1, 0);
            else FN(chunk_grad_stored_)(gc, tc, n, Kf, scale, keep, uni, wc, 0, 1, 0);
        } else {
            if (w) FN(chunk_grad_stored_)(gc, tc, n, Kf, scale, keep, uni, wc, 1, 0, 0);
            else FN(chunk_grad_stored_)(gc, tc, n, Kf, scale, keep, uni, wc, 0, 0, 0);
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
        if (FN(position_start)(a, p, p0, g, 1, acc, bad, &y, &s, &wy)) continue;
        const int lane = (int)((p - p0) % CECE_SUM_LANES);
        /* Read before a stored pass may overwrite the row in place. */
        const T zy = t ? (T)0 : FN(capped)(z[y], k->has_cap, k->cap, k->inv_cap);
        T m;
        double S, U;
        FN(row_online)(z, C, k, store ? g : NULL, chunk_ref, &m, &S, &U);
        double log_s = cece_log1p_f64(U);
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
        if (store) FN(row_grad_stored)(g, t, C, chunk_ref, lse, K, scale, w, k);
        else FN(row_grad)(z, t, g, C, m, (T)log_s, K, scale, w, k);
        if (!t) { /* the label's own entry, in float64 */
            double chain = k->has_cap ? 1.0 - ((double)zy / k->cap) * ((double)zy / k->cap) : 1.0;
            g[y] = (T)(scale * chain * FN(label_grad)(K, ay, dy, log_s, S, U));
        }
    }
}
