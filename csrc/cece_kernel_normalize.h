/* log_softmax, softmax, logsumexp; and the exp for the accuracy tests.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

static void FN(normalize_rows)(int op, int64_t C, const T *x, T *out, int64_t p0, int64_t p1,
                               const FN(consts) *k) {
    for (int64_t p = p0; p < p1; p++) {
        const T *z = x + p * C;
        T m;
        double S, U;
        FN(row_online)(z, C, k, NULL, NULL, &m, &S, &U);
        double log_s = cece_log1p_f64(U);
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
    FN(tile_sumexp_)(zb, NULL, C, stride, nw, m, U, 0, (T)1, (T)1, 0, NULL);
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
    const int64_t rows = cece_block_rows(C);
    T zt[CECE_BLOCK_ELEMS], m[CECE_TILE];
    for (int64_t b0 = p0; b0 < p1; b0 += rows) {
        const int64_t nw = p1 - b0 < rows ? p1 - b0 : rows;
        ROWS_TO_TILE_MAX(x + b0 * C, C, nw, rows, zt, m);
        FN(normalize_core)(op, C, rows, nw, zt, m, zt, out + b0);
        if (op != CECE_LOGSUMEXP) TILE_TO_ROWS(zt, C, nw, rows, out + b0 * C);
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

void FN(exp_array)(const T *x, T *y, int64_t n, int kind) {
    if (kind == CECE_EXP_SHIFTED) {
#ifdef EXPS_ARRAY
        EXPS_ARRAY(x, y, n); /* the form the level's small-C loop uses */
        return;
#endif
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = VEXPS(x[i]);
    } else if (kind == CECE_EXP_LABEL) {
#ifdef LABEL_EXPS_ARRAY
        LABEL_EXPS_ARRAY(x, y, n); /* the AVX-512 float32 label-shifted forward's */
        return;
#endif
        for (int64_t i = 0; i < n; i++) y[i] = VEXP_LABEL(x[i]); /* its scalar model */
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) y[i] = VEXP(x[i]);
    }
}

