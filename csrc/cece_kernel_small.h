/* Short rows, the common call: a lean loop over a few vectors of rows.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

/* ---- small C, the common call: a few vectors of rows at a time ------------------------ */

/* Integer labels, no weights, smoothing, z-loss or softcap, C < CECE_SMALL_C: the same maths
 * as tile_core, leaner. A block is CECE_SMALL_BLOCK rows (two vectors of T), transposed by
 * gathers into a tile that stays in L1; the loss is summed across the item's blocks in float64
 * vector lanes and folded into the item's lanes once, at the end (the denominator here is a
 * count of valid positions, exact in any order). Items are whole blocks (cece_work.h). */
#ifndef CECE_SMALL_BLOCK_VECS
#define CECE_SMALL_BLOCK_VECS 2
#endif
#define CECE_SMALL_BLOCK (CECE_SMALL_BLOCK_VECS * 64 / (int64_t)sizeof(T))

/* The class loop: for each class c of a block, e = exp(zt[c] - m) per row, summed apart from
 * the maxima (rest: the e of x != 0; NaN is no max and goes to the rest) with the maxima
 * counted (ones, exactly: ties count each), so that U = (ones - 1) + rest is S - 1 without
 * cancellation; et, if not NULL, gets the e. Levels with SMALL_SUMS (AVX-512) have their
 * own, the same bits. */
CECE_INLINE void FN(small_sums_)(const T *zt, const T *m, int64_t C, T *et, T *rest, T *ones,
                                  const int store) {
    enum { B = CECE_SMALL_BLOCK };
    for (int64_t l = 0; l < B; l++) rest[l] = ones[l] = 0;
    for (int64_t c = 0; c < C; c++) {
#pragma omp simd
        for (int64_t l = 0; l < B; l++) {
            T x = zt[c * B + l] - m[l];
            T e = VEXPS(x);
            if (store) et[c * B + l] = e;
            T other = x != (T)0 ? (T)1 : (T)0;
            rest[l] += e * other;
            ones[l] += (T)1 - other;
        }
    }
}

/* store as a constant: a conditional store would cost SSE2 its vector loop. With nz set,
 * then the next block's tile and maxima, as the levels' own SMALL_SUMS interleave them. */
CECE_INLINE void FN(small_sums)(const T *zt, const T *m, int64_t C, T *et, T *rest, T *ones,
                                const T *nz, int64_t nnw, T *ntile, T *nm) {
    if (et) FN(small_sums_)(zt, m, C, et, rest, ones, 1);
    else FN(small_sums_)(zt, m, C, et, rest, ones, 0);
    if (nz) ROWS_TO_TILE_MAX(nz, C, nnw, CECE_SMALL_BLOCK, ntile, nm);
}
#ifndef SMALL_SUMS
#define SMALL_SUMS FN(small_sums)
#define CECE_SMALL_SUMS_PORTABLE
#elif CECE_SMALL_BLOCK_VECS != 2
#error "the levels' own SMALL_SUMS take blocks of two 64-byte vectors of rows"
#endif

/* The forward of a float32 mean or sum, a block of rows at a time: row l's log1p(U) goes
 * into lane l's product of 1 + U, or, for tiny U, its sum of U, and its dy into a sum; the
 * lane's loss is their log, sum and difference, at the end of the item. A float U has 24
 * bits: from 2^-29 on, 1 + U is exact in a double, and the product of such factors rounds at
 * 2^-53 a step, as a sum of logs would; below it, log1p(U) = U to 2^-30 relative. Rows that
 * are not valid (vb 0) add nothing; a NaN U is not big, and goes to the sum. Levels with
 * SMALL_PRODUCT (AVX-512) have their own, the same bits (the compiler turns this one's
 * selects into branches). A label-shifted block passes ones, zy and vb as NULL. */
CECE_INLINE void FN(small_product)(const T *rest, const T *ones, const T *zy, const T *m,
                                   const T *vb, double *prod, double *tiny, double *dy_sum) {
    if (!ones) { /* a label-shifted block (ones, zy and vb NULL): U = rest, no dy, all valid */
#pragma omp simd
        for (int64_t l = 0; l < CECE_SMALL_BLOCK; l++) {
            const double u = (double)rest[l];
            const int big = u >= 0x1p-29;
            prod[l] = big ? prod[l] * (1.0 + u) : prod[l];
            tiny[l] = big ? tiny[l] : tiny[l] + u;
        }
        return;
    }
#pragma omp simd
    for (int64_t l = 0; l < CECE_SMALL_BLOCK; l++) {
        const double u = (double)((ones[l] - 1) + rest[l]);
        const double dy = (double)(zy[l] - m[l]);
        const int on = vb[l] != 0, big = u >= 0x1p-29;
        prod[l] = on && big ? prod[l] * (1.0 + u) : prod[l];
        tiny[l] = on && !big ? tiny[l] + u : tiny[l];
        dy_sum[l] = on ? dy_sum[l] + dy : dy_sum[l];
    }
}
#ifndef SMALL_PRODUCT
#define SMALL_PRODUCT FN(small_product)
#define CECE_SMALL_PRODUCT_PORTABLE
#endif

/* The float32 forward of a mean or sum, on a full block whose labels are all classes (the
 * usual call), shifts each row by its label's logit instead of its max: rest = the sum over
 * c != y of e^(z_c - z_y) and the row's loss is log1p(rest), with no maxima (in the
 * transposition), no count of them and no dy (measured, 10-class forward: 6% faster). Its
 * precision is the max shift's: 1 + rest is the same S scaled by e^(max - z_y), the label's
 * own term the exact 1. Arguments are held at CECE_LABEL_X_MAX, where the shifted exp still
 * holds; a block with a rest above CECE_LABEL_REST_MAX (an argument beyond 40: a wrong
 * prediction by a margin of 40, or inf), a NaN, or a label on +inf is done again with its
 * maxima. With nz set, then the next block's tile (without maxima); ahead is the block after
 * it (a level's own loop may prefetch it). Returns whether every
 * rest is at most CECE_LABEL_REST_MAX and every label logit below +inf. Levels with
 * LABEL_SUMS (AVX-512) have their own, the same bits. */
CECE_INLINE int FN(label_sums)(const T *zt, const T *zy, const int64_t *y, int64_t C, T *rest,
                               const T *nz, int64_t nnw, T *ntile, const T *ahead) {
    enum { B = CECE_SMALL_BLOCK };
    T yt[B]; /* the labels as T: a compare in the lanes of T (SSE2 has no 64-bit one) */
    for (int64_t l = 0; l < B; l++) rest[l] = 0, yt[l] = (T)y[l];
    for (int64_t c = 0; c < C; c++) {
#pragma omp simd
        for (int64_t l = 0; l < B; l++) {
            T x = zt[c * B + l] - zy[l];
            x = x > (T)CECE_LABEL_X_MAX ? (T)CECE_LABEL_X_MAX : x; /* NaN passes */
            const T e = VEXPS(x);
            rest[l] += yt[l] != (T)c ? e : (T)0;
        }
    }
    if (nz) ROWS_TO_TILE(nz, C, nnw, B, ntile);
    (void)ahead; /* the AVX-512 loop prefetches it */
    int ok = 1;
#pragma omp simd reduction(& : ok)
    for (int64_t l = 0; l < B; l++) /* a label on +inf: the row's NaN (inf - inf) */
        ok &= (rest[l] <= (T)CECE_LABEL_REST_MAX) & (zy[l] <= (T)FLT_MAX);
    return ok;
}
#ifndef LABEL_SUMS
#define LABEL_SUMS FN(label_sums)
#define CECE_LABEL_SUMS_PORTABLE
#endif

/* A block's classes, CECE_IGNORED or CECE_BAD, and its valid flags; returns the count of
 * rows with a class and lowers *bad to the first bad row. Out of line, as is the rescaling
 * below: the usual block (every label a class) never comes here, and the block loop
 * compiles leaner without them (measured, 10-class float32 forward: 5%). */
__attribute__((noinline)) static int64_t FN(small_classify)(
    const int64_t *labels, int64_t nw, int64_t C, int64_t ignore, int64_t b0, int64_t *y,
    T *valid, int64_t *bad) {
    enum { B = CECE_SMALL_BLOCK };
    int64_t nbad = 0, nok = 0;
#pragma omp simd reduction(+ : nbad, nok)
    for (int64_t l = 0; l < B; l++) {
        const int64_t label = l < nw ? labels[l < nw ? l : 0] : ignore;
        /* As cece_position_weight: ignore_index first, then the range. */
        y[l] = label == ignore ? CECE_IGNORED
                               : ((uint64_t)label < (uint64_t)C ? label : CECE_BAD);
        valid[l] = y[l] >= 0 ? (T)1 : (T)0;
        nbad += y[l] == CECE_BAD;
        nok += y[l] >= 0;
    }
    if (nbad > 0)
        for (int64_t l = 0; l < nw; l++)
            if (y[l] == CECE_BAD && b0 + l < *bad) { *bad = b0 + l; break; }
    return nok;
}

/* The by_product lanes' products scaled back to [1, 2), their exponents kept apart. */
__attribute__((noinline)) static void FN(small_rescale)(double *prod, int64_t *prod_exp) {
    for (int64_t l = 0; l < CECE_SMALL_BLOCK; l++) {
        const int64_t bits = cece_f64_to_bits(prod[l]);
        prod_exp[l] += (bits >> 52) - 1023;
        prod[l] = cece_bits_to_f64((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
    }
}

CECE_INLINE void FN(small_plain_)(const cece_ce_args *a, const FN(consts) *k, int64_t p0,
                                  int64_t p1, cece_sums *acc, int64_t *bad, const int want_grad,
                                  const int by_product) {
    enum { B = CECE_SMALL_BLOCK };
    const int64_t C = a->classes, ignore = a->ignore_index;
    const int64_t *labels = a->labels;
    T *losses = (T *)a->losses;
    const T scale = (T)k->grad_scale;
    /* two tiles and maxima: this block's, and the next one's, filled while this one's
     * exps run */
    T tiles[2][CECE_SMALL_C * B], maxima[2][B], et[CECE_SMALL_C * B];
    T zy[B], valid[B], all_valid[B], rest[B], ones[B], loss[B], gy[B], factor[B];
    int64_t y[B];
    double loss_sum[B];
    /* by_product: a row's log1p(U) goes into its lane's product of 1 + U (or, for tiny U,
     * its sum of U), its dy into a sum; the lane's loss is taken at the end (see below) */
    double prod[B], tiny[B], dy_sum[B];
    int64_t prod_exp[B], since_scaled = 0;
    int64_t nvalid = 0;
    for (int64_t l = 0; l < B; l++) {
        loss_sum[l] = tiny[l] = dy_sum[l] = 0.0, prod[l] = 1.0, prod_exp[l] = 0;
        all_valid[l] = 1;
    }
    /* With ignore_index outside [0, C) (the usual -100), a full block's labels are all classes
     * exactly when the largest of them, as unsigned, is below C: one max per vector of labels,
     * and such blocks (the usual call) take them as they are, sparing the per-block
     * classification (a sixth of a 10-class forward). */
    const int ignore_outside = (uint64_t)ignore >= (uint64_t)C;
    if ((p1 - p0) % B != 0) {
        /* The lanes of the last, partial block past its last row are computed and dropped:
         * they must hold values (an earlier block's, or these) */
        memset(tiles, 0, sizeof tiles);
        memset(maxima, 0, sizeof maxima);
    }
    if (p0 < p1)
        ROWS_TO_TILE_MAX((const T *)a->logits + p0 * C, C, p1 - p0 < B ? p1 - p0 : B, B,
                         tiles[0], maxima[0]);
    /* by_product: whether maxima[i] holds tiles[i]'s (a label-shifted block gathers the
     * next without them; the other calls always gather them) */
    int have_max[2] = {1, 0};
    for (int64_t b0 = p0, cur = 0; b0 < p1; b0 += B, cur ^= 1) {
        const int64_t nw = p1 - b0 < B ? p1 - b0 : B;
        const T *zt = tiles[cur], *m = maxima[cur];
        const int64_t nnw = p1 - (b0 + B) < B ? p1 - (b0 + B) : B; /* the next block's rows */
        const T *nz = nnw > 0 ? (const T *)a->logits + (b0 + B) * C : NULL;
        const int64_t *yb = y; /* the block's classes, CECE_IGNORED or CECE_BAD */
        const T *vb = valid;   /* 1 for a row with a class, else 0 */
        uint64_t top = (uint64_t)C;
        if (ignore_outside && nw == B) {
            top = 0;
#pragma omp simd reduction(max : top)
            for (int64_t l = 0; l < B; l++) {
                const uint64_t u = (uint64_t)labels[b0 + l];
                top = u > top ? u : top;
            }
        }
        if (top < (uint64_t)C) {
            yb = labels + b0;
            vb = all_valid;
            nvalid += B;
        } else {
            nvalid += FN(small_classify)(labels + b0, nw, C, ignore, b0, y, valid, bad);
        }
        if (by_product) {
            /* products rescaled every 16 blocks: a row's factor is below 2^58 (1 + rest, rest
             * at most CECE_LABEL_REST_MAX = e^40, or 1 + U below C < 256), so a product stays
             * below 2^929 */
            if (++since_scaled == 16) {
                since_scaled = 0;
                FN(small_rescale)(prod, prod_exp);
            }
            int shifted = 0;
            if (yb == labels + b0) { /* a full block, every label a class */
                /* the rows of the block after the next, for the class loop to prefetch; at
                 * the end, this full block's own (every line it touches is in the logits) */
                const T *ahead = (const T *)a->logits + (b0 + 3 * B <= p1 ? b0 + 2 * B : b0) * C;
                PICK_LABEL_ROWS((const T *)a->logits + b0 * C, C, B, yb, zy);
                shifted = LABEL_SUMS(zt, zy, yb, C, rest, nz, nnw, tiles[cur ^ 1], ahead);
                have_max[cur ^ 1] = 0;
                if (shifted) SMALL_PRODUCT(rest, NULL, NULL, NULL, NULL, prod, tiny, dy_sum);
                else nz = NULL; /* again with its maxima; the next tile is made */
            }
            if (!shifted) {
                if (!have_max[cur]) FN(tile_max)(zt, C, B, B, maxima[cur]); /* as ROWS_TO_TILE_MAX's */
                SMALL_SUMS(zt, m, C, NULL, rest, ones, nz, nnw, tiles[cur ^ 1], maxima[cur ^ 1]);
                if (nz) have_max[cur ^ 1] = 1;
                PICK_LABEL_LOGITS(zt, B, B, yb, zy);
                SMALL_PRODUCT(rest, ones, zy, m, vb, prod, tiny, dy_sum);
            }
            continue;
        }
        SMALL_SUMS(zt, m, C, want_grad && C < 16 ? et : NULL, rest, ones, nz, nnw, tiles[cur ^ 1],
                   maxima[cur ^ 1]);
        /* from the tile, after its class loop: by now the gathers find its stores retired */
        PICK_LABEL_LOGITS(zt, B, B, yb, zy);
#pragma omp simd
        for (int64_t l = 0; l < B; l++) {
            T U = (ones[l] - 1) + rest[l];
            T log_s = VLOG1P(U);
            T dy = zy[l] - m[l];
            loss[l] = vb[l] != 0 ? log_s - dy : (T)0;
            loss_sum[l] += (double)loss[l];
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
        if (C >= 16) {
            /* Rows of a vector or more: the gradient straight into the rows, its exps taken
             * again, the same bits as below; gathering the tile back costs more (the gathers
             * wait for the stores just made to it). */
            for (int64_t l = 0; l < nw; l++) {
                const T *z = (const T *)a->logits + (b0 + l) * C;
                T *g = (T *)a->grad + (b0 + l) * C;
                const T ml = m[l], fl = factor[l];
                if (vb[l] != 0) {
#pragma omp simd
                    for (int64_t j = 0; j < C; j++) g[j] = VEXPS(z[j] - ml) * fl;
                    g[yb[l]] = gy[l];
                } else {
                    for (int64_t j = 0; j < C; j++) g[j] = 0;
                }
            }
            continue;
        }
        for (int64_t c = 0; c < C; c++) {
#pragma omp simd
            for (int64_t l = 0; l < B; l++) /* a select: an ignored row's NaN must not pass */
                et[c * B + l] = vb[l] != 0 ? et[c * B + l] * factor[l] : (T)0;
        }
        for (int64_t l = 0; l < nw; l++)
            if (yb[l] >= 0) et[yb[l] * B + l] = gy[l];
        TILE_TO_ROWS(et, C, nw, B, (T *)a->grad + b0 * C);
    }
    if (by_product)
        for (int64_t l = 0; l < B; l++)
            loss_sum[l] = ((cece_log_f64(prod[l]) + (double)prod_exp[l] * 0.69314718055994530942) +
                           tiny[l]) - dy_sum[l];
    /* position p0 + i went to loss_sum[i % B]; B is a multiple of CECE_SUM_LANES. The
     * denominator is a count: exact in any lane. */
    for (int64_t l = 0; l < B; l++) acc->loss[l % CECE_SUM_LANES] += loss_sum[l];
    acc->den[0] += (double)nvalid;
}

static void FN(ce_small_plain)(const cece_ce_args *a, const FN(consts) *k, int64_t p0, int64_t p1,
                               cece_sums *acc, int64_t *bad) {
    /* The forward of a float32 mean or sum: a lane's losses summed as the log of a product,
     * one log per lane and item instead of one per row (a tenth of a 10-class forward). */
    if (a->grad) FN(small_plain_)(a, k, p0, p1, acc, bad, 1, 0);
    else if (sizeof(T) == 4 && !a->losses) FN(small_plain_)(a, k, p0, p1, acc, bad, 0, 1);
    else FN(small_plain_)(a, k, p0, p1, acc, bad, 0, 0);
}

#ifdef CECE_SMALL_SUMS_PORTABLE
#undef SMALL_SUMS
#undef CECE_SMALL_SUMS_PORTABLE
#endif
#ifdef CECE_SMALL_PRODUCT_PORTABLE
#undef SMALL_PRODUCT
#undef CECE_SMALL_PRODUCT_PORTABLE
#endif
#ifdef CECE_LABEL_SUMS_PORTABLE
#undef LABEL_SUMS
#undef CECE_LABEL_SUMS_PORTABLE
#endif
#undef CECE_SMALL_BLOCK
