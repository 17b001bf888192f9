/* Blocks of short rows (C < CECE_SMALL_C classes) to and from the tile layout, where class c
 * of row i sits at tile[c * stride + i] (stride >= the rows of the block), so that the
 * small-C kernels can vectorise across rows. The _max form also gives each row's max (NaN
 * ignored, as tile_max) while the columns pass by.
 *
 * Left to itself the compiler emulates these strided copies one element at a time (about
 * 3.5 ns a row for C = 10); with AVX2 or AVX-512 a gather per class (per row on the way
 * back) moves a whole vector of rows at once (about 1.9 ns a row on the way in), on the load
 * ports, which the exp arithmetic that follows leaves idle; AVX-512 float32 gathers pairs of
 * classes (half the loads). Other targets keep the plain loops. Also here: each row's label
 * logit (PICK). Included by cece_instantiate.h after the level's target pragma.
 */
#ifndef CECE_COLUMNS_H
#define CECE_COLUMNS_H

#include <math.h>
#include <stdint.h>

#include "cece_inline.h"
#include "cece_work.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>

/* Lane l of a gather reads row l of the block: offsets l * step. */
CECE_INLINE __m256i cece_lane_times8(int64_t step) {
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                              _mm256_set1_epi32((int)step));
}
#endif

/* ---- the portable loops ------------------------------------------------------------- */

#define CECE_PLAIN_TO_TILE(T, NAME)                                                        \
    CECE_INLINE void NAME(const T *z, int64_t C, int64_t nw, int64_t stride, T *tile) {    \
        for (int64_t i = 0; i < nw; i++)                                                    \
            for (int64_t c = 0; c < C; c++) tile[c * stride + i] = z[i * C + c];           \
    }

#define CECE_PLAIN_TO_TILE_MAX(T, NAME, TO_TILE)                                           \
    CECE_INLINE void NAME(const T *z, int64_t C, int64_t nw, int64_t stride, T *tile,      \
                          T *m) {                                                           \
        TO_TILE(z, C, nw, stride, tile);                                                    \
        for (int64_t i = 0; i < nw; i++) m[i] = -(T)INFINITY;                              \
        for (int64_t c = 0; c < C; c++)                                                     \
            for (int64_t i = 0; i < nw; i++) {                                              \
                T v = tile[c * stride + i];                                                 \
                m[i] = v > m[i] ? v : m[i];                                                 \
            }                                                                               \
    }

#define CECE_PLAIN_TO_ROWS(T, NAME)                                                        \
    CECE_INLINE void NAME(const T *tile, int64_t C, int64_t nw, int64_t stride, T *g) {    \
        for (int64_t i = 0; i < nw; i++)                                                    \
            for (int64_t c = 0; c < C; c++) g[i * C + c] = tile[c * stride + i];           \
    }

/* out[l] = z[l * C + y[l]] for the rows of a block whose labels are all classes */
#define CECE_PLAIN_PICK_ROWS(T, NAME)                                                      \
    CECE_INLINE void NAME(const T *z, int64_t C, int64_t n, const int64_t *y, T *out) {    \
        for (int64_t l = 0; l < n; l++) out[l] = z[l * C + y[l]];                          \
    }

#define CECE_PLAIN_PICK(T, NAME)                                                           \
    CECE_INLINE void NAME(const T *tile, int64_t stride, int64_t n, const int64_t *y,      \
                          T *out) {                                                         \
        for (int64_t l = 0; l < n; l++) out[l] = y[l] >= 0 ? tile[y[l] * stride + l] : (T)0; \
    }

/* The way in with one element per lane, at either vector level: lane l of GATHER(live, off,
 * p) is p[l * C] for the live lanes, 0 for the others; V the vector, L its lanes, LIVE the
 * lane mask's type, OFF and FIRST the lane offsets and the mask of the first n lanes. m ==
 * NULL: no maxima (the calls pass it as a constant, so the inlined max is dropped). */
#define CECE_GATHER_TO_TILE(T, SUF, V, L, LIVE, OFF, FIRST, SET1, STORE, MAX, GATHER)      \
    CECE_INLINE void cece_rows_to_tile_max_##SUF(const T *z, int64_t C, int64_t nw,        \
                                                 int64_t stride, T *tile, T *m) {           \
        const __typeof__(OFF(0)) off = OFF(C);                                              \
        for (int64_t i0 = 0; i0 < nw; i0 += L) {                                            \
            const LIVE live = FIRST(nw - i0);                                               \
            const T *base = z + i0 * C;                                                     \
            V top = SET1(-INFINITY);                                                        \
            for (int64_t c = 0; c < C; c++) {                                               \
                V v = GATHER(live, off, base + c);                                          \
                STORE(tile + c * stride + i0, v);                                           \
                top = MAX(v, top); /* v > top ? v : top: a NaN v keeps top */               \
            }                                                                               \
            if (m) STORE(m + i0, top);                                                      \
        }                                                                                   \
    }                                                                                       \
    CECE_INLINE void cece_rows_to_tile_##SUF(const T *z, int64_t C, int64_t nw,            \
                                             int64_t stride, T *tile) {                     \
        cece_rows_to_tile_max_##SUF(z, C, nw, stride, tile, NULL);                          \
    }

#if defined(__AVX512F__)

CECE_INLINE __m512i cece_lane_times16(int64_t step) {
    return _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)step));
}

CECE_INLINE __mmask16 cece_first16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

CECE_INLINE __mmask8 cece_first8(int64_t n) {
    return n >= 8 ? (__mmask8)0xff : (__mmask8)((1u << n) - 1);
}

/* The way back, one row per gather: X is the intrinsics' suffix (ps / pd), the rest as in
 * CECE_GATHER_TO_TILE. */
#define CECE_AVX512_TO_ROWS(T, SUF, X, L, MASK, OFF, FIRST)                                \
    CECE_INLINE void cece_tile_to_rows_##SUF(const T *tile, int64_t C, int64_t nw,         \
                                             int64_t stride, T *g) {                        \
        const __typeof__(OFF(0)) off = OFF(stride);                                         \
        for (int64_t c0 = 0; c0 < C; c0 += L) {                                             \
            const MASK cls = FIRST(C - c0);                                                 \
            const T *col = tile + c0 * stride;                                              \
            for (int64_t i = 0; i < nw; i++)                                                \
                _mm512_mask_storeu_##X(g + i * C + c0, cls,                                 \
                                       _mm512_mask_i32gather_##X(_mm512_setzero_##X(), cls, \
                                                                 off, col + i, sizeof(T))); \
        }                                                                                   \
    }

/* float32: a row's classes c and c + 1 are one 64-bit element, so two gathers of 8 such
 * pairs (rows 0-7 and 8-15) bring two classes of 16 rows with half the loads of two 16-lane
 * gathers (the loads are what a gather costs), and two permutes part the pairs into the two
 * classes: v0 and v1 from base = row 0's class c, off = cece_lane_times16(C), lanes not
 * live 0. An odd C's last class comes by a 16-lane gather. */
CECE_INLINE void cece_gather_pair16_f32(const float *base, __m512i off, __mmask16 live,
                                        __m512 *v0, __m512 *v1) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                            28, 30);
    const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    const __m512 lo = _mm512_castpd_ps(_mm512_mask_i32gather_pd(
        _mm512_setzero_pd(), (__mmask8)live, _mm512_castsi512_si256(off), base, sizeof(float)));
    const __m512 hi = _mm512_castpd_ps(_mm512_mask_i32gather_pd(
        _mm512_setzero_pd(), (__mmask8)(live >> 8), _mm512_extracti64x4_epi64(off, 1), base,
        sizeof(float)));
    *v0 = _mm512_permutex2var_ps(lo, evens, hi);
    *v1 = _mm512_permutex2var_ps(lo, odds, hi);
}

CECE_INLINE void cece_rows_to_tile_max_f32(const float *z, int64_t C, int64_t nw,
                                           int64_t stride, float *tile, float *m) {
    const __m512i off = cece_lane_times16(C);
    for (int64_t i0 = 0; i0 < nw; i0 += 16) {
        const __mmask16 live = cece_first16(nw - i0);
        const float *base = z + i0 * C;
        __m512 top = _mm512_set1_ps(-INFINITY);
        int64_t c = 0;
        for (; c + 1 < C; c += 2) {
            __m512 v0, v1;
            cece_gather_pair16_f32(base + c, off, live, &v0, &v1);
            _mm512_storeu_ps(tile + c * stride + i0, v0);
            _mm512_storeu_ps(tile + (c + 1) * stride + i0, v1);
            top = _mm512_max_ps(v0, top); /* v > top ? v : top: a NaN v keeps top */
            top = _mm512_max_ps(v1, top);
        }
        if (c < C) {
            __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, off, base + c,
                                                sizeof(float));
            _mm512_storeu_ps(tile + c * stride + i0, v);
            top = _mm512_max_ps(v, top);
        }
        if (m) _mm512_storeu_ps(m + i0, top);
    }
}

/* 16 labels as 32-bit lanes: their low halves (labels here are classes or CECE_IGNORED /
 * CECE_BAD, all within 32 bits), for 16-lane compares and gather offsets. */
CECE_INLINE __m512i cece_labels_low16(const int64_t *y) {
    const __m512i low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                                 24, 26, 28, 30);
    return _mm512_permutex2var_epi32(_mm512_loadu_si512(y), low_halves,
                                     _mm512_loadu_si512(y + 8));
}

/* The label's logit of each row of a block, from the block's tile: out[l] = y[l] >= 0 ?
 * tile[y[l] * stride + l] : 0 for l < n, a multiple of the lanes. The max-shifted blocks
 * take it after their class loop, when the tile's stores have long retired (a gather waits
 * for fresh ones; the label-shifted ones take it from the rows, below). Its offsets fit 32
 * bits, so float32 gathers 16 lanes at a time from the labels' low halves: half the gathers
 * of 8 lanes from the rows, which took 8% of a 10-class forward, this 4% (measured,
 * benchmarks/kernel_ratio.c). */
CECE_INLINE void cece_pick_f32(const float *tile, int64_t stride, int64_t n, const int64_t *y,
                               float *out) {
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t l0 = 0; l0 < n; l0 += 16) {
        const __m512i yl = cece_labels_low16(y + l0);
        const __mmask16 ok = _mm512_cmpge_epi32_mask(yl, _mm512_setzero_si512());
        const __m512i at = _mm512_add_epi32(_mm512_mullo_epi32(yl, _mm512_set1_epi32((int)stride)),
                                            _mm512_add_epi32(lanes, _mm512_set1_epi32((int)l0)));
        _mm512_storeu_ps(out + l0, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ok, at, tile,
                                                            sizeof(float)));
    }
}

/* The label-shifted forward's label logits, from the rows of a full block (its labels all
 * classes): out[l] = z[l * C + y[l]], 16 lanes a gather, offsets below 32 * 256. Its class
 * loop needs them first, and from the tile the gathers would wait for the stores that just
 * made it (measured, 10-class forward: 1-2%). */
CECE_INLINE void cece_pick_rows_f32(const float *z, int64_t C, int64_t n, const int64_t *y,
                                    float *out) {
    const __m512i row_starts = cece_lane_times16(C);
    for (int64_t l0 = 0; l0 < n; l0 += 16) {
        const __m512i yl = cece_labels_low16(y + l0);
        _mm512_storeu_ps(out + l0, _mm512_i32gather_ps(_mm512_add_epi32(row_starts, yl),
                                                       z + l0 * C, sizeof(float)));
    }
}

CECE_INLINE void cece_pick_f64(const double *tile, int64_t stride, int64_t n, const int64_t *y,
                               double *out) {
    const __m512i lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t l0 = 0; l0 < n; l0 += 8) {
        const __m512i yl = _mm512_loadu_si512(y + l0);
        const __mmask8 ok = _mm512_cmpge_epi64_mask(yl, _mm512_setzero_si512());
        /* 32-bit factors: the ok lanes' labels are classes */
        const __m512i at = _mm512_add_epi64(_mm512_mul_epu32(yl, _mm512_set1_epi64(stride)),
                                            _mm512_add_epi64(lanes, _mm512_set1_epi64(l0)));
        _mm512_storeu_pd(out + l0, _mm512_mask_i64gather_pd(_mm512_setzero_pd(), ok, at, tile,
                                                            sizeof(double)));
    }
}

#define CECE_GATHER512_PD(live, off, p) _mm512_mask_i32gather_pd(_mm512_setzero_pd(), live, off, p, 8)
CECE_GATHER_TO_TILE(double, f64, __m512d, 8, __mmask8, cece_lane_times8, cece_first8, _mm512_set1_pd,
                    _mm512_storeu_pd, _mm512_max_pd, CECE_GATHER512_PD)
CECE_AVX512_TO_ROWS(float, f32, ps, 16, __mmask16, cece_lane_times16, cece_first16)
CECE_AVX512_TO_ROWS(double, f64, pd, 8, __mmask8, cece_lane_times8, cece_first8)

CECE_INLINE void cece_rows_to_tile_f32(const float *z, int64_t C, int64_t nw, int64_t stride,
                                       float *tile) {
    cece_rows_to_tile_max_f32(z, C, nw, stride, tile, NULL);
}

#elif defined(__AVX2__)

/* AVX2 gathers take a vector mask, lanes below n set, and 32-bit offsets l * C. */
CECE_INLINE __m256 cece_first_lanes8(int64_t n) {
    return _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
}

CECE_INLINE __m256d cece_first_lanes4(int64_t n) {
    return _mm256_castsi256_pd(
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)));
}

CECE_INLINE __m128i cece_lane_times4(int64_t step) {
    return _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32((int)step));
}

/* AVX2's gathers take a vector mask (V is also the mask's type) and the base first. */
#define CECE_GATHER256_PS(live, off, p) _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, off, live, 4)
#define CECE_GATHER256_PD(live, off, p) _mm256_mask_i32gather_pd(_mm256_setzero_pd(), p, off, live, 8)
CECE_GATHER_TO_TILE(float, f32, __m256, 8, __m256, cece_lane_times8, cece_first_lanes8,
                    _mm256_set1_ps, _mm256_storeu_ps, _mm256_max_ps, CECE_GATHER256_PS)
CECE_GATHER_TO_TILE(double, f64, __m256d, 4, __m256d, cece_lane_times4, cece_first_lanes4,
                    _mm256_set1_pd, _mm256_storeu_pd, _mm256_max_pd, CECE_GATHER256_PD)

/* The way back stays scalar: AVX2 has no masked gather-and-store that beats it. */
CECE_PLAIN_TO_ROWS(float, cece_tile_to_rows_f32)
CECE_PLAIN_TO_ROWS(double, cece_tile_to_rows_f64)
CECE_PLAIN_PICK(float, cece_pick_f32)
CECE_PLAIN_PICK(double, cece_pick_f64)

#else

CECE_PLAIN_TO_TILE(float, cece_rows_to_tile_f32)
CECE_PLAIN_TO_TILE(double, cece_rows_to_tile_f64)
CECE_PLAIN_TO_TILE_MAX(float, cece_rows_to_tile_max_f32, cece_rows_to_tile_f32)
CECE_PLAIN_TO_TILE_MAX(double, cece_rows_to_tile_max_f64, cece_rows_to_tile_f64)
CECE_PLAIN_TO_ROWS(float, cece_tile_to_rows_f32)
CECE_PLAIN_TO_ROWS(double, cece_tile_to_rows_f64)
CECE_PLAIN_PICK(float, cece_pick_f32)
CECE_PLAIN_PICK(double, cece_pick_f64)

#endif

/* Below AVX-512 (and for float64, whose label-shifted path is never taken) the plain pick. */
#if !defined(__AVX512F__)
CECE_PLAIN_PICK_ROWS(float, cece_pick_rows_f32)
#endif
CECE_PLAIN_PICK_ROWS(double, cece_pick_rows_f64)

#endif /* CECE_COLUMNS_H */
