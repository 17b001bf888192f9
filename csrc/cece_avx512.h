/* AVX-512 forms of the shifted exp and of the kernels' loops that spend their time in it.
 *
 * The scalar exp (cece_math.h) scales by 2^n with two multiplies and a select for the
 * underflow; AVX-512's vscalef does it in one instruction, rounding p * 2^n once as the two
 * multiplies do (the first is exact), so these are the same bits. The compiler cannot reach
 * vscalef from the scalar code, so the loops that spend their time in exps are written here
 * with intrinsics: the small-C class loop (most of a 10-class call), the row kernel's chunk
 * loop, the tile kernel's class loop and the exp test hook. Constants and the order of
 * operations follow cece_math.h and the portable loops exactly; tests/test_simd.py checks
 * the bits against the AVX2 level's (measured at 2 threads: large-C forward 15-25% faster,
 * three fewer vector operations in about 20 per exp). One exception: the float32
 * label-shifted forward takes its exps by a table form (cece_exp_label_f32) that only this
 * level can afford; the tests hold it to its scalar model, and the loop around it to AVX2's
 * with the polynomial switched back in (cece_set_label_exp_table).
 *
 * Included by cece_instantiate.h after the level's target pragma; empty below AVX-512.
 */
#ifndef CECE_AVX512_H
#define CECE_AVX512_H

#if defined(__AVX512F__)
#include <float.h>
#include <immintrin.h>
#include <stdint.h>

#include "cece_inline.h"
#include "cece_columns.h"
#include "cece_levels.h"
#include "cece_math.h"
#include "cece_work.h"

/* e^r for |r| <= ln2/2, as cece_exp_poly_f32 / _f64. */
CECE_INLINE __m512 cece_exp_poly_v16(__m512 r) {
    __m512 t = _mm512_fmadd_ps(_mm512_set1_ps(CECE_EXPF_C6), r, _mm512_set1_ps(CECE_EXPF_C5));
    t = _mm512_fmadd_ps(t, r, _mm512_set1_ps(CECE_EXPF_C4));
    t = _mm512_fmadd_ps(t, r, _mm512_set1_ps(CECE_EXPF_C3));
    t = _mm512_fmadd_ps(t, r, _mm512_set1_ps(CECE_EXPF_C2));
    t = _mm512_fmadd_ps(t, r, _mm512_set1_ps(1.0f));
    return _mm512_fmadd_ps(t, r, _mm512_set1_ps(1.0f));
}

CECE_INLINE __m512d cece_exp_poly_v8(__m512d r) {
    const __m512d r2 = _mm512_mul_pd(r, r), r4 = _mm512_mul_pd(r2, r2);
#define CECE_PAIR_(hi, lo) _mm512_fmadd_pd(_mm512_set1_pd(hi), r, _mm512_set1_pd(lo))
    const __m512d p01 = CECE_PAIR_(CECE_EXP_C3, CECE_EXP_C2), p23 = CECE_PAIR_(CECE_EXP_C5, CECE_EXP_C4),
                  p45 = CECE_PAIR_(CECE_EXP_C7, CECE_EXP_C6), p67 = CECE_PAIR_(CECE_EXP_C9, CECE_EXP_C8),
                  p89 = CECE_PAIR_(CECE_EXP_C11, CECE_EXP_C10);
#undef CECE_PAIR_
    const __m512d q0 = _mm512_fmadd_pd(p23, r2, p01);
    const __m512d q1 = _mm512_fmadd_pd(p67, r2, p45);
    const __m512d q2 = _mm512_fmadd_pd(_mm512_set1_pd(CECE_EXP_C12), r2, p89);
    const __m512d u = _mm512_fmadd_pd(_mm512_fmadd_pd(q2, r4, q1), r4, q0);
    return _mm512_fmadd_pd(r2, u, _mm512_add_pd(r, _mm512_set1_pd(1.0)));
}

/* cece_exp_shifted_f32 / _f64 on a vector: the same reduction, the polynomial, then
 * p * 2^n by vscalef, 0 below the cut (NaN is not below it: it flows through p). P is the
 * constants' prefix (CECE_EXPF_ / CECE_EXP_). */
#define CECE_AVX512_EXPS(NAME, X, V, MASK, MAGIC, P, POLY)                                 \
    CECE_INLINE V NAME(V x) {                                                               \
        const V magic = _mm512_set1_##X(MAGIC);                                             \
        const V k = _mm512_fmadd_##X(x, _mm512_set1_##X(P##LOG2E), magic);                 \
        const V nf = _mm512_sub_##X(k, magic);                                              \
        V r = _mm512_fnmadd_##X(nf, _mm512_set1_##X(P##LN2_HI), x);                        \
        r = _mm512_fnmadd_##X(nf, _mm512_set1_##X(P##LN2_LO), r);                          \
        const MASK live = _mm512_cmp_##X##_mask(x, _mm512_set1_##X(P##ZERO_BELOW),         \
                                                _CMP_NLT_UQ);                               \
        return _mm512_maskz_scalef_##X(live, POLY(r), nf);                                  \
    }

CECE_AVX512_EXPS(cece_exps_v16, ps, __m512, __mmask16, CECE_MAGIC_SHIFTED_F32, CECE_EXPF_,
                 cece_exp_poly_v16)
CECE_AVX512_EXPS(cece_exps_v8, pd, __m512d, __mmask8, CECE_MAGIC_SHIFTED_F64, CECE_EXP_,
                 cece_exp_poly_v8)

/* The small-C class loop (cece_kernel_small.h has the portable form and the meaning) on a
 * block of two vectors of rows: for each class c, e = exp(zt[c] - m); rest sums the e of
 * the non-maxima (x != 0; NaN is no maximum) and ones counts the maxima, as C minus the
 * count of the others (one masked add fewer than counting them); et, if not NULL, gets the
 * e. The sums run in registers: SMALL_CLASS takes one class, SMALL_FINISH stores the sums.
 *
 * With nz set it also transposes the next block (nnw rows from nz) into the tile ntile and
 * its maxima nm, as ROWS_TO_TILE_MAX would after it: the gathers of the next block, on the
 * load ports, run among this block's exps, on the arithmetic ports, instead of before them
 * (the transposition was a fifth of a 10-class forward). X is the intrinsics' suffix, L the
 * lanes, EXPS the exp; NEXT_CLASSES(c) gathers the next block's classes from c on and says
 * how many it took (float32 takes pairs). */
#define CECE_AVX512_SMALL_CLASS(T, SUF, X, V, L, MASK, EXPS)                                \
    CECE_INLINE void cece_small_class_##SUF(const T *ztc, V m0, V m1, T *etc, V *r0, V *r1, \
                                            V *o0, V *o1) {                                 \
        const V zero = _mm512_setzero_##X(), one = _mm512_set1_##X(1);                      \
        const V x0 = _mm512_sub_##X(_mm512_loadu_##X(ztc), m0);                             \
        const V x1 = _mm512_sub_##X(_mm512_loadu_##X(ztc + L), m1);                         \
        const V e0 = EXPS(x0), e1 = EXPS(x1);                                               \
        if (etc) {                                                                          \
            _mm512_storeu_##X(etc, e0);                                                     \
            _mm512_storeu_##X(etc + L, e1);                                                 \
        }                                                                                   \
        const MASK n0 = _mm512_cmp_##X##_mask(x0, zero, _CMP_NEQ_UQ);                      \
        const MASK n1 = _mm512_cmp_##X##_mask(x1, zero, _CMP_NEQ_UQ);                      \
        *r0 = _mm512_mask_add_##X(*r0, n0, *r0, e0);                                        \
        *r1 = _mm512_mask_add_##X(*r1, n1, *r1, e1);                                        \
        *o0 = _mm512_mask_add_##X(*o0, n0, *o0, one);                                       \
        *o1 = _mm512_mask_add_##X(*o1, n1, *o1, one);                                       \
    }                                                                                       \
                                                                                            \
    CECE_INLINE void cece_small_finish_##SUF(int64_t C, V r0, V r1, V o0, V o1, T *rest,    \
                                             T *ones) {                                     \
        const V classes = _mm512_set1_##X((T)C);                                            \
        _mm512_storeu_##X(rest, r0);                                                        \
        _mm512_storeu_##X(rest + L, r1);                                                    \
        _mm512_storeu_##X(ones, _mm512_sub_##X(classes, o0));                               \
        _mm512_storeu_##X(ones + L, _mm512_sub_##X(classes, o1));                           \
    }

#define CECE_AVX512_SMALL_SUMS(T, NAME, SUF, X, V, L, NEXT_CLASSES)                         \
    CECE_INLINE void NAME(const T *zt, const T *m, int64_t C, T *et, T *rest, T *ones,      \
                          const T *nz, int64_t nnw, T *ntile, T *nm) {                      \
        const V m0 = _mm512_loadu_##X(m), m1 = _mm512_loadu_##X(m + L);                     \
        V r0 = _mm512_setzero_##X(), r1 = r0, o0 = r0, o1 = r0;                             \
        V top0 = _mm512_set1_##X(-INFINITY), top1 = top0;                                   \
        int64_t next = nz ? 0 : C; /* the next block's classes gathered so far */            \
        for (int64_t c = 0; c < C; c++) {                                                   \
            if (next <= c && next < C) /* stays ahead of c: one group per group */           \
                next += NEXT_CLASSES(nz, C, next, nnw, ntile, &top0, &top1);                \
            cece_small_class_##SUF(zt + c * 2 * L, m0, m1, et ? et + c * 2 * L : NULL, &r0,  \
                                   &r1, &o0, &o1);                                          \
        }                                                                                   \
        cece_small_finish_##SUF(C, r0, r1, o0, o1, rest, ones);                             \
        if (nz) {                                                                           \
            _mm512_storeu_##X(nm, top0);                                                    \
            _mm512_storeu_##X(nm + L, top1);                                                \
        }                                                                                   \
    }

CECE_AVX512_SMALL_CLASS(float, f32, ps, __m512, 16, __mmask16, cece_exps_v16)
CECE_AVX512_SMALL_CLASS(double, f64, pd, __m512d, 8, __mmask8, cece_exps_v8)

/* The next block's classes c (and c + 1) for its rows 0..nw (dead lanes 0), into the tile
 * (stride two vectors) and the running maxima top0 / top1, as cece_rows_to_tile_max_f32 /
 * _f64 (cece_columns.h) gather them: the same values. */
CECE_INLINE int64_t cece_next_classes_f32(const float *z, int64_t C, int64_t c, int64_t nw,
                                          float *tile, __m512 *top0, __m512 *top1) {
    const __m512i off = cece_lane_times16(C);
    __m512 *top[2] = {top0, top1};
    for (int h = 0; h < 2; h++) {
        const __mmask16 live = nw > 16 * h ? cece_first16(nw - 16 * h) : 0;
        const float *base = z + 16 * h * C + c;
        __m512 v0, v1;
        if (c + 1 < C) {
            cece_gather_pair16_f32(base, off, live, &v0, &v1);
            _mm512_storeu_ps(tile + (c + 1) * 32 + 16 * h, v1);
            *top[h] = _mm512_max_ps(v1, _mm512_max_ps(v0, *top[h]));
        } else {
            v0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, off, base, sizeof(float));
            *top[h] = _mm512_max_ps(v0, *top[h]);
        }
        _mm512_storeu_ps(tile + c * 32 + 16 * h, v0);
    }
    return c + 1 < C ? 2 : 1;
}

CECE_INLINE int64_t cece_next_classes_f64(const double *z, int64_t C, int64_t c, int64_t nw,
                                          double *tile, __m512d *top0, __m512d *top1) {
    const __m256i off = cece_lane_times8(C);
    __m512d *top[2] = {top0, top1};
    for (int h = 0; h < 2; h++) {
        const __m512d v = _mm512_mask_i32gather_pd(_mm512_setzero_pd(),
                                                   nw > 8 * h ? cece_first8(nw - 8 * h) : 0,
                                                   off, z + 8 * h * C + c, sizeof(double));
        _mm512_storeu_pd(tile + c * 16 + 8 * h, v);
        *top[h] = _mm512_max_pd(v, *top[h]);
    }
    return 1;
}

CECE_AVX512_SMALL_SUMS(float, cece_small_sums_any_f32, f32, ps, __m512, 16, cece_next_classes_f32)
CECE_AVX512_SMALL_SUMS(double, cece_small_sums_f64, f64, pd, __m512d, 8, cece_next_classes_f64)

/* The next block's classes c and c + 1 (C even, the block whole: every lane live) into its
 * tile; v[h][0] and v[h][1] hold them for rows 16h..16h + 15. */
CECE_INLINE void cece_next_pair_f32(const float *nz, int64_t C, int64_t c, __m512i off,
                                    float *ntile, __m512 v[2][2]) {
    for (int h = 0; h < 2; h++) {
        cece_gather_pair16_f32(nz + 16 * h * C + c, off, 0xffff, &v[h][0], &v[h][1]);
        _mm512_storeu_ps(ntile + c * 32 + 16 * h, v[h][0]);
        _mm512_storeu_ps(ntile + (c + 1) * 32 + 16 * h, v[h][1]);
    }
}

/* The usual float32 forward block: C even, the next block whole, no e kept. The class loop
 * goes by pairs, each with the next block's pair beside it, every lane live, no branches and
 * the maxima in registers: the same values as cece_small_sums_any_f32 (whose per-class
 * bookkeeping cost 3% of a 10-class forward, measured). */
CECE_INLINE void cece_small_sums_pairs_f32(const float *zt, const float *m, int64_t C,
                                           float *rest, float *ones, const float *nz,
                                           float *ntile, float *nm) {
    const __m512 m0 = _mm512_loadu_ps(m), m1 = _mm512_loadu_ps(m + 16);
    const __m512i off = cece_lane_times16(C);
    __m512 r0 = _mm512_setzero_ps(), r1 = r0, o0 = r0, o1 = r0;
    __m512 top[2] = {_mm512_set1_ps(-INFINITY), _mm512_set1_ps(-INFINITY)};
    for (int64_t c = 0; c < C; c += 2) {
        __m512 v[2][2];
        cece_next_pair_f32(nz, C, c, off, ntile, v);
        for (int h = 0; h < 2; h++) top[h] = _mm512_max_ps(v[h][1], _mm512_max_ps(v[h][0], top[h]));
        cece_small_class_f32(zt + c * 32, m0, m1, NULL, &r0, &r1, &o0, &o1);
        cece_small_class_f32(zt + (c + 1) * 32, m0, m1, NULL, &r0, &r1, &o0, &o1);
    }
    cece_small_finish_f32(C, r0, r1, o0, o1, rest, ones);
    _mm512_storeu_ps(nm, top[0]);
    _mm512_storeu_ps(nm + 16, top[1]);
}

CECE_INLINE void cece_small_sums_f32(const float *zt, const float *m, int64_t C, float *et,
                                     float *rest, float *ones, const float *nz, int64_t nnw,
                                     float *ntile, float *nm) {
    if (nz && nnw == 32 && C % 2 == 0 && !et)
        cece_small_sums_pairs_f32(zt, m, C, rest, ones, nz, ntile, nm);
    else
        cece_small_sums_any_f32(zt, m, C, et, rest, ones, nz, nnw, ntile, nm);
}

/* cece_exp_label_f32 (cece_math.h: the table form and its accuracy) on a vector: 2^(j/32)
 * by a two-table permute indexed by k's low five bits, the quadratic, one fused multiply-add,
 * vscalef; 0 below the cut. Ten operations where cece_exps_v16 takes twelve. */
CECE_INLINE __m512 cece_exps_label_v16(__m512 x) {
    const __m512 magic = _mm512_set1_ps(CECE_LABEL_EXP_MAGIC);
    const __m512 k = _mm512_fmadd_ps(x, _mm512_set1_ps(CECE_EXPF_LOG2E), magic);
    const __m512 nf = _mm512_sub_ps(k, magic);
    __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(CECE_EXPF_LN2_HI), x);
    r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(CECE_EXPF_LN2_LO), r);
    const __m512 t = _mm512_permutex2var_ps(_mm512_load_ps(cece_exp2_32nds), _mm512_castps_si512(k),
                                            _mm512_load_ps(cece_exp2_32nds + 16));
    const __m512 q = _mm512_mul_ps(
        _mm512_fmadd_ps(_mm512_set1_ps(CECE_LABEL_EXP_C2), r, _mm512_set1_ps(CECE_LABEL_EXP_C1)), r);
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(CECE_EXPF_ZERO_BELOW), _CMP_NLT_UQ);
    return _mm512_maskz_scalef_ps(live, _mm512_fmadd_ps(t, q, t), nf);
}

/* One class c of a label-shifted block: the e of rows whose label is not c added to r0 / r1;
 * by the table exp, or (table 0, for the tests: see cece_label_sums_f32) the polynomial one. */
CECE_INLINE void cece_label_class_f32(const float *ztc, __m512 s0, __m512 s1, __m512i y0,
                                      __m512i y1, int64_t c, __m512 *r0, __m512 *r1,
                                      const int table) {
    const __m512i cv = _mm512_set1_epi32((int)c);
    const __m512 x0 = _mm512_sub_ps(_mm512_loadu_ps(ztc), s0);
    const __m512 x1 = _mm512_sub_ps(_mm512_loadu_ps(ztc + 16), s1);
    const __m512 e0 = table ? cece_exps_label_v16(x0) : cece_exps_v16(x0);
    const __m512 e1 = table ? cece_exps_label_v16(x1) : cece_exps_v16(x1);
    *r0 = _mm512_mask_add_ps(*r0, _mm512_cmpneq_epi32_mask(y0, cv), *r0, e0);
    *r1 = _mm512_mask_add_ps(*r1, _mm512_cmpneq_epi32_mask(y1, cv), *r1, e1);
}

/* The label-shifted class loop (cece_kernel_small.h, FN(label_sums), has the portable form
 * and the meaning) on a float32 block: rest = the sum over c != y of e^(z_c - z_y), the next
 * block's classes gathered beside the exps (pairs for a whole next block and even C, as
 * cece_small_sums_pairs_f32, but without maxima). No hold at 43: vscalef scales every
 * argument up to 88 exactly, so a row beyond 43 exceeds CECE_LABEL_REST_MAX here as it
 * does there. Returns whether every rest is at most CECE_LABEL_REST_MAX and every label
 * logit below +inf. */
CECE_INLINE int cece_label_sums_with_f32(const float *zt, const float *zy, const int64_t *y,
                                         int64_t C, float *rest, const float *nz, int64_t nnw,
                                         float *ntile, const float *ahead, const int table) {
    /* the labels are classes here: their low halves */
    const __m512i y0 = cece_labels_low16(y), y1 = cece_labels_low16(y + 16);
    const __m512 s0 = _mm512_loadu_ps(zy), s1 = _mm512_loadu_ps(zy + 16);
    __m512 r0 = _mm512_setzero_ps(), r1 = r0;
    if (nz && nnw == 32 && C % 2 == 0) {
        const __m512i off = cece_lane_times16(C);
        for (int64_t c = 0; c < C; c += 2) {
            __m512 v[2][2];
            cece_next_pair_f32(nz, C, c, off, ntile, v);
            /* the block after the next into L1 (its 32 rows are 2C lines: four a pair), so
             * that the next block's gathers find it there (measured, 10-class forward: 1-2%) */
            for (int q = 0; q < 4; q++)
                __builtin_prefetch((const char *)ahead + 64 * (2 * c + q), 0, 3);
            cece_label_class_f32(zt + c * 32, s0, s1, y0, y1, c, &r0, &r1, table);
            cece_label_class_f32(zt + (c + 1) * 32, s0, s1, y0, y1, c + 1, &r0, &r1, table);
        }
    } else {
        __m512 unused0, unused1; /* the next block's maxima: not wanted */
        int64_t next = nz ? 0 : C;
        for (int64_t c = 0; c < C; c++) {
            if (next <= c && next < C)
                next += cece_next_classes_f32(nz, C, next, nnw, ntile, &unused0, &unused1);
            cece_label_class_f32(zt + c * 32, s0, s1, y0, y1, c, &r0, &r1, table);
        }
    }
    _mm512_storeu_ps(rest, r0);
    _mm512_storeu_ps(rest + 16, r1);
    const __m512 cap = _mm512_set1_ps(CECE_LABEL_REST_MAX), finite = _mm512_set1_ps(FLT_MAX);
    return (_mm512_cmp_ps_mask(r0, cap, _CMP_LE_OQ) & _mm512_cmp_ps_mask(r1, cap, _CMP_LE_OQ) &
            _mm512_cmp_ps_mask(s0, finite, _CMP_LE_OQ) &
            _mm512_cmp_ps_mask(s1, finite, _CMP_LE_OQ)) == 0xffff;
}

/* The label-shifted class loop with the table exp, or with the polynomial one while the tests
 * have cece_set_label_exp_table(0) (then the same bits as the portable loop at AVX2). */
CECE_INLINE int cece_label_sums_f32(const float *zt, const float *zy, const int64_t *y, int64_t C,
                                    float *rest, const float *nz, int64_t nnw, float *ntile,
                                    const float *ahead) {
    if (cece_label_exp_table)
        return cece_label_sums_with_f32(zt, zy, y, C, rest, nz, nnw, ntile, ahead, 1);
    return cece_label_sums_with_f32(zt, zy, y, C, rest, nz, nnw, ntile, ahead, 0);
}

/* The float32 forward's product accumulation (cece_kernel_small.h, FN(small_product), has
 * the portable form and the meaning) on a block of two vectors of rows: the selects as
 * masked operations, and none for the usual block, every row valid and no U tiny (the
 * same operations on every lane: the same bits; 3% of a 10-class forward, 8% at 4). A
 * label-shifted block passes ones, zy and vb as NULL (constants: their work compiles away). */
CECE_INLINE void cece_small_product_f32(const float *rest, const float *ones, const float *zy,
                                        const float *m, const float *vb, double *prod,
                                        double *tiny, double *dy_sum) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512d one = _mm512_set1_pd(1.0), cut = _mm512_set1_pd(0x1p-29);
    __m512 Us[2], dys[2] = {zero, zero};
    __mmask16 on[2] = {0xffff, 0xffff}, common = 0xffff;
    for (int h = 0; h < 2; h++) {
        Us[h] = _mm512_loadu_ps(rest + 16 * h);
        if (ones)
            Us[h] = _mm512_add_ps(
                _mm512_sub_ps(_mm512_loadu_ps(ones + 16 * h), _mm512_set1_ps(1.0f)), Us[h]);
        if (zy) dys[h] = _mm512_sub_ps(_mm512_loadu_ps(zy + 16 * h), _mm512_loadu_ps(m + 16 * h));
        if (vb) on[h] = _mm512_cmp_ps_mask(_mm512_loadu_ps(vb + 16 * h), zero, _CMP_NEQ_UQ);
        common &= on[h] & _mm512_cmp_ps_mask(Us[h], _mm512_set1_ps(0x1p-29f), _CMP_GE_OQ);
    }
    const int usual = common == 0xffff; /* every row valid, no tiny U: no masks */
    for (int q = 0; q < 4; q++) { /* lanes 8q..8q + 7 */
        const int h = q >> 1, l = 8 * q;
        const __m256 Uq = q & 1 ? _mm512_extractf32x8_ps(Us[h], 1) : _mm512_castps512_ps256(Us[h]);
        const __m256 dyq =
            q & 1 ? _mm512_extractf32x8_ps(dys[h], 1) : _mm512_castps512_ps256(dys[h]);
        const __m512d u = _mm512_cvtps_pd(Uq), p = _mm512_loadu_pd(prod + l);
        if (usual) {
            _mm512_storeu_pd(prod + l, _mm512_mul_pd(p, _mm512_add_pd(one, u)));
            if (zy)
                _mm512_storeu_pd(dy_sum + l,
                                 _mm512_add_pd(_mm512_loadu_pd(dy_sum + l), _mm512_cvtps_pd(dyq)));
            continue;
        }
        const __mmask8 onq = (__mmask8)(on[h] >> (8 * (q & 1)));
        const __mmask8 big = _mm512_mask_cmp_pd_mask(onq, u, cut, _CMP_GE_OQ);
        const __mmask8 small = onq & (__mmask8)~big;
        const __m512d t = _mm512_loadu_pd(tiny + l);
        _mm512_storeu_pd(prod + l, _mm512_mask_mul_pd(p, big, p, _mm512_add_pd(one, u)));
        _mm512_storeu_pd(tiny + l, _mm512_mask_add_pd(t, small, t, u));
        if (zy) {
            const __m512d d = _mm512_loadu_pd(dy_sum + l);
            _mm512_storeu_pd(dy_sum + l, _mm512_mask_add_pd(d, onq, d, _mm512_cvtps_pd(dyq)));
        }
    }
}

/* The row kernel's chunk of whole blocks (cece_kernel_rows.h, FN(chunk_sumexp_), has the
 * portable form and the meaning): nblocks blocks of four vectors from z, e = exp(z - ref)
 * summed into the block's lanes (lane; with count_ones, only the non-maxima, x != 0, and the
 * maxima counted in lane1), stored to e if store; each block prefetches the block a chunk
 * ahead as the portable loop does. The lanes run in registers, in the same order. */
#define CECE_AVX512_BLOCKS_SUMEXP(T, SUF, X, V, L, MASK, EXPS)                              \
    CECE_INLINE void cece_blocks_sumexp_##SUF(const T *z, T *e, int64_t nblocks, T ref,     \
                                              T *lane, T *lane1, const int store,           \
                                              const int count_ones) {                       \
        const V vref = _mm512_set1_##X(ref), zero = _mm512_setzero_##X(),                   \
                one = _mm512_set1_##X(1);                                                    \
        V s[4], o[4];                                                                        \
        for (int v = 0; v < 4; v++) {                                                        \
            s[v] = _mm512_loadu_##X(lane + v * L);                                           \
            o[v] = count_ones ? _mm512_loadu_##X(lane1 + v * L) : zero;                     \
        }                                                                                    \
        for (int64_t b = 0; b < nblocks; b++, z += 4 * L) {                                  \
            for (int v = 0; v < 4; v++) {                                                    \
                __builtin_prefetch(z + CECE_CHUNK + v * L, 0, sizeof(T) == 4 ? 3 : 2);       \
                if (store) __builtin_prefetch(e + CECE_CHUNK + v * L, 1, 3);                 \
            }                                                                                \
            for (int v = 0; v < 4; v++) {                                                    \
                const V x = _mm512_sub_##X(_mm512_loadu_##X(z + v * L), vref);              \
                const V ev = EXPS(x);                                                        \
                if (store) _mm512_storeu_##X(e + v * L, ev);                                 \
                if (count_ones) {                                                            \
                    const MASK other = _mm512_cmp_##X##_mask(x, zero, _CMP_NEQ_UQ);         \
                    s[v] = _mm512_mask_add_##X(s[v], other, s[v], ev);                       \
                    o[v] = _mm512_mask_add_##X(o[v], (MASK)~other, o[v], one);               \
                } else {                                                                     \
                    s[v] = _mm512_add_##X(s[v], ev);                                         \
                }                                                                            \
            }                                                                                \
            if (store) e += 4 * L;                                                           \
        }                                                                                    \
        for (int v = 0; v < 4; v++) {                                                        \
            _mm512_storeu_##X(lane + v * L, s[v]);                                           \
            if (count_ones) _mm512_storeu_##X(lane1 + v * L, o[v]);                          \
        }                                                                                    \
    }

CECE_AVX512_BLOCKS_SUMEXP(float, f32, ps, __m512, 16, __mmask16, cece_exps_v16)
CECE_AVX512_BLOCKS_SUMEXP(double, f64, pd, __m512d, 8, __mmask8, cece_exps_v8)

/* The tile kernel's class loop (cece_kernel_tiles.h, FN(tile_block_sumexp_), has the
 * portable form and the meaning) on a full tile of CECE_TILE positions: classes c0..c1 of
 * zb (class c at zb + c * inner), the sums of each position in registers across the classes
 * instead of in memory; e to eb as well if store; the same classes of the tile at `ahead`
 * (if not NULL) prefetched into L2. */
#define CECE_AVX512_TILE_SUMEXP(T, SUF, X, V, L, MASK, EXPS)                                \
    CECE_INLINE void cece_tile_sumexp_##SUF(const T *zb, T *eb, int64_t c0, int64_t c1,    \
                                            int64_t inner, const T *m, T *rest, T *ones,   \
                                            const int store, const T *ahead) {              \
        enum { NV = CECE_TILE / L };                                                        \
        const V zero = _mm512_setzero_##X(), one = _mm512_set1_##X(1);                      \
        V mv[NV], r[NV], o[NV];                                                              \
        for (int v = 0; v < NV; v++) {                                                      \
            mv[v] = _mm512_loadu_##X(m + v * L);                                            \
            r[v] = o[v] = zero;                                                             \
        }                                                                                   \
        for (int64_t c = c0; c < c1; c++) {                                                 \
            const T *zc = zb + c * inner;                                                   \
            if (ahead)                                                                      \
                for (int v = 0; v < NV; v++) __builtin_prefetch(ahead + c * inner + v * L, 0, 2); \
            for (int v = 0; v < NV; v++) {                                                  \
                const V x = _mm512_sub_##X(_mm512_loadu_##X(zc + v * L), mv[v]);           \
                const V e = EXPS(x);                                                        \
                if (store) _mm512_storeu_##X(eb + c * inner + v * L, e);                    \
                const MASK other = _mm512_cmp_##X##_mask(x, zero, _CMP_NEQ_UQ);            \
                r[v] = _mm512_mask_add_##X(r[v], other, r[v], e);                           \
                o[v] = _mm512_mask_add_##X(o[v], (MASK)~other, o[v], one);                  \
            }                                                                               \
        }                                                                                   \
        for (int v = 0; v < NV; v++) {                                                      \
            _mm512_storeu_##X(rest + v * L, r[v]);                                          \
            _mm512_storeu_##X(ones + v * L, o[v]);                                          \
        }                                                                                   \
    }

CECE_AVX512_TILE_SUMEXP(float, f32, ps, __m512, 16, __mmask16, cece_exps_v16)
CECE_AVX512_TILE_SUMEXP(double, f64, pd, __m512d, 8, __mmask8, cece_exps_v8)

/* y = shifted exp of x, for the test hook (cece._core.exp_array). */
#define CECE_AVX512_EXPS_ARRAY(T, SUF, X, L, MASK, EXPS)                                   \
    CECE_INLINE void cece_exps_array_##SUF(const T *x, T *y, int64_t n) {                  \
        for (int64_t i = 0; i < n; i += L) {                                                \
            const MASK live = n - i >= L ? (MASK)-1 : (MASK)((1u << (n - i)) - 1);          \
            _mm512_mask_storeu_##X(y + i, live,                                             \
                                   EXPS(_mm512_maskz_loadu_##X(live, x + i)));              \
        }                                                                                   \
    }

CECE_AVX512_EXPS_ARRAY(float, f32, ps, 16, __mmask16, cece_exps_v16)
CECE_AVX512_EXPS_ARRAY(float, label_f32, ps, 16, __mmask16, cece_exps_label_v16)
CECE_AVX512_EXPS_ARRAY(double, f64, pd, 8, __mmask8, cece_exps_v8)

#endif /* __AVX512F__ */

#endif /* CECE_AVX512_H */
