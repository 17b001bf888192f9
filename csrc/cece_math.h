/* Branch-free exp, expm1 and tanh that the compiler can vectorise.
 *
 * libm's exp is a function call per element and never vectorises without -ffast-math
 * (which we refuse: it breaks NaN/inf handling). These are range reduction
 * x = n*ln2 + r, |r| <= ln2/2, a Taylor polynomial for e^r, and a scale by 2^n built from
 * the exponent bits. Everything is selects and arithmetic, so `#pragma omp simd` loops that
 * call them compile to straight vector code at every instruction-set level.
 *
 * Included by each cece_level_*.c after its `#pragma GCC target`, so every level gets its own
 * copy compiled for its instruction set. Accuracy is measured by tests/test_math.py.
 */
#ifndef CECE_MATH_H
#define CECE_MATH_H

#include <stdint.h>
#include <string.h>

static inline float cece_bits_to_f32(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline int32_t cece_f32_to_bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
static inline double cece_bits_to_f64(int64_t i) { double f; memcpy(&f, &i, 8); return f; }
static inline int64_t cece_f64_to_bits(double f) { int64_t i; memcpy(&i, &f, 8); return i; }

/* ---- float32 ---------------------------------------------------------------------- */

/* 1.5 * 2^23: x + magic rounds x to an integer held in the low mantissa bits. */
#define CECE_MAGIC_F32 12582912.0f

/* (e^r - 1) / r for |r| <= ln2/2: Taylor to degree 6 (truncation below half an ulp). */
static inline float cece_expm1_q_f32(float r) {
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    return q * r + 1.0f;
}

/* Range reduction x = n*ln2 + r; returns r, stores n (as an integer) in *n. */
static inline float cece_reduce_f32(float x, int32_t *n) {
    float k = x * 1.44269504088896341f + CECE_MAGIC_F32;
    *n = cece_f32_to_bits(k) - cece_f32_to_bits(CECE_MAGIC_F32);
    float nf = k - CECE_MAGIC_F32;
    float r = x - nf * 0.693145751953125f;  /* ln2's high part: nf * it is exact */
    return r - nf * 1.428606765330187045e-06f;
}

static inline float cece_exp_f32(float x) {
    /* Clamp so that 2^n stays representable in two factors. Written so a NaN fails both
     * compares and flows through the arithmetic: the result is NaN with no extra select.
     * Below -105 the result rounds to 0, above 89 to inf. */
    float xc = x < -105.0f ? -105.0f : x;
    xc = xc > 89.0f ? 89.0f : xc;
    int32_t n;
    float r = cece_reduce_f32(xc, &n);
    float p = cece_expm1_q_f32(r) * r + 1.0f;
    /* 2^n as two normal factors so results in the subnormal range round correctly once.
     * Unsigned shifts: for a NaN input n is garbage and must not overflow a signed int. */
    int32_t n1 = n >> 1;
    int32_t n2 = n - n1;
    float s1 = cece_bits_to_f32((int32_t)((uint32_t)(n1 + 127) << 23));
    float s2 = cece_bits_to_f32((int32_t)((uint32_t)(n2 + 127) << 23));
    return p * s1 * s2;
}

/* e^x - 1 without cancellation near 0, for the tanh below. */
static inline float cece_expm1_f32(float x) {
    float xc = x < -87.0f ? -87.0f : x; /* NaN passes through, as in cece_exp_f32 */
    xc = xc > 87.0f ? 87.0f : xc;
    int32_t n;
    float r = cece_reduce_f32(xc, &n);
    float s = cece_bits_to_f32((int32_t)((uint32_t)(n + 127) << 23));
    return (s - 1.0f) + s * (r * cece_expm1_q_f32(r));
}

static inline float cece_tanh_f32(float x) {
    float ax = x < 0.0f ? -x : x;
    float em = cece_expm1_f32(-2.0f * ax);  /* in (-1, 0] */
    float t = -em / (2.0f + em);
    return x < 0.0f ? -t : t;               /* NaN: em is NaN, so t is NaN */
}

/* ---- float64 ---------------------------------------------------------------------- */

/* 1.5 * 2^52 */
#define CECE_MAGIC_F64 6755399441055744.0

/* (e^r - 1) / r for |r| <= ln2/2: Taylor to degree 12 (truncation ~4e-18). */
static inline double cece_expm1_q_f64(double r) {
    double q = 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    return q * r + 1.0;
}

static inline double cece_reduce_f64(double x, int64_t *n) {
    double k = x * 1.4426950408889634074 + CECE_MAGIC_F64;
    *n = cece_f64_to_bits(k) - cece_f64_to_bits(CECE_MAGIC_F64);
    double nf = k - CECE_MAGIC_F64;
    double r = x - nf * 6.93147180369123816490e-01;  /* fdlibm's ln2_hi: nf * it is exact */
    return r - nf * 1.90821492927058770002e-10;
}

static inline double cece_exp_f64(double x) {
    double xc = x < -746.0 ? -746.0 : x; /* NaN passes through, as in cece_exp_f32 */
    xc = xc > 710.0 ? 710.0 : xc;
    int64_t n;
    double r = cece_reduce_f64(xc, &n);
    double p = cece_expm1_q_f64(r) * r + 1.0;
    int64_t n1 = n >> 1;
    int64_t n2 = n - n1;
    double s1 = cece_bits_to_f64((int64_t)((uint64_t)(n1 + 1023) << 52));
    double s2 = cece_bits_to_f64((int64_t)((uint64_t)(n2 + 1023) << 52));
    return p * s1 * s2;
}

static inline double cece_expm1_f64(double x) {
    double xc = x < -708.0 ? -708.0 : x;
    xc = xc > 708.0 ? 708.0 : xc;
    int64_t n;
    double r = cece_reduce_f64(xc, &n);
    double s = cece_bits_to_f64((int64_t)((uint64_t)(n + 1023) << 52));
    return (s - 1.0) + s * (r * cece_expm1_q_f64(r));
}

static inline double cece_tanh_f64(double x) {
    double ax = x < 0.0 ? -x : x;
    double em = cece_expm1_f64(-2.0 * ax);
    double t = -em / (2.0 + em);
    return x < 0.0 ? -t : t;
}

#endif /* CECE_MATH_H */
