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

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cece_inline.h"

/* The build compiles with -ffp-contract=off, so a * b + c rounds the same way in scalar and
 * vector code, and the same value computed in two places is the same bits (the softcap of
 * the label's logit must equal the softcap inside the max and the sums). The polynomials ask
 * for their fused multiply-adds here, where the level has FMA. */
#if defined(__FMA__)
#define CECE_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#define CECE_FMA(a, b, c) __builtin_fma((a), (b), (c))
#else
#define CECE_FMAF(a, b, c) ((a) * (b) + (c))
#define CECE_FMA(a, b, c) ((a) * (b) + (c))
#endif

CECE_INLINE float cece_bits_to_f32(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
CECE_INLINE int32_t cece_f32_to_bits(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
CECE_INLINE double cece_bits_to_f64(int64_t i) { double f; memcpy(&f, &i, 8); return f; }
CECE_INLINE int64_t cece_f64_to_bits(double f) { int64_t i; memcpy(&i, &f, 8); return i; }

/* ---- float32 ---------------------------------------------------------------------- */

/* The constants of the float32 exp, named once for this scalar form and the AVX-512 one
 * (cece_avx512.h), which must compute the same bits: 1/ln2, ln2 in two parts (the high
 * part's product with any n is exact) and the polynomial's coefficients (below). */
#define CECE_EXPF_LOG2E 1.44269504088896341f
#define CECE_EXPF_LN2_HI 0.693145751953125f
#define CECE_EXPF_LN2_LO 1.428606765330187045e-06f
#define CECE_EXPF_C2 0.499999940395355224609375f
#define CECE_EXPF_C3 0.16666519641876220703125f
#define CECE_EXPF_C4 0.041668392717838287353515625f
#define CECE_EXPF_C5 0.008368748240172863006591796875f
#define CECE_EXPF_C6 0.0013814517296850681304931640625f

/* 1.5 * 2^23: x + magic rounds x to an integer held in the low mantissa bits. */
#define CECE_MAGIC_F32 12582912.0f

/* (e^r - 1) / r for |r| <= ln2/2: Taylor to degree 6 (truncation below half an ulp). */
CECE_INLINE float cece_expm1_q_f32(float r) {
    float q = 1.0f / 5040.0f;
    q = CECE_FMAF(q, r, 1.0f / 720.0f);
    q = CECE_FMAF(q, r, 1.0f / 120.0f);
    q = CECE_FMAF(q, r, 1.0f / 24.0f);
    q = CECE_FMAF(q, r, 1.0f / 6.0f);
    q = CECE_FMAF(q, r, 0.5f);
    return CECE_FMAF(q, r, 1.0f);
}

/* Range reduction x = n*ln2 + r; returns r, stores n (as an integer) in *n. */
CECE_INLINE float cece_reduce_f32(float x, int32_t *n) {
    float k = CECE_FMAF(x, CECE_EXPF_LOG2E, CECE_MAGIC_F32);
    *n = cece_f32_to_bits(k) - cece_f32_to_bits(CECE_MAGIC_F32);
    float nf = k - CECE_MAGIC_F32;
    float r = CECE_FMAF(-nf, CECE_EXPF_LN2_HI, x);
    return CECE_FMAF(-nf, CECE_EXPF_LN2_LO, r);
}

/* e^r for |r| <= ln2/2: 1 + r + r^2 * q(r), q of degree 4, minimax for the relative error
 * (3.1e-9, a twentieth of float's half ulp; fitted by benchmarks/exp_coefficients.py), by
 * Horner's rule: six fused multiply-adds. A degree-7 polynomial by Estrin's scheme took eight
 * operations for no accuracy to show (its rounding was the larger: 1.08 ulp at most against
 * 0.74, sampled), and the kernels' exps are independent of each other, so the longer
 * dependency chain costs nothing (measured, 2 threads: the float32 kernels 3-9% faster). */
CECE_INLINE float cece_exp_poly_f32(float r) {
    float t = CECE_FMAF(CECE_EXPF_C6, r, CECE_EXPF_C5);
    t = CECE_FMAF(t, r, CECE_EXPF_C4);
    t = CECE_FMAF(t, r, CECE_EXPF_C3);
    t = CECE_FMAF(t, r, CECE_EXPF_C2);
    t = CECE_FMAF(t, r, 1.0f);
    return CECE_FMAF(t, r, 1.0f);
}

/* e^x for every x: -inf gives 0, +inf gives inf, NaN flows through the arithmetic and gives
 * NaN, results in the subnormal range are correctly rounded once, and overflow happens where
 * the true value exceeds FLT_MAX. The two clamps are all the special-casing. */
CECE_INLINE float cece_exp_f32(float x) {
    float xc = x < -105.0f ? -105.0f : x; /* below, the result rounds to 0 */
    xc = xc > 89.0f ? 89.0f : xc;         /* above, to inf */
    int32_t n;
    float r = cece_reduce_f32(xc, &n);
    /* 2^n as two normal factors (n in [-152, 129]). Unsigned shifts: a NaN's garbage n must
     * not overflow a signed int. */
    int32_t n1 = n >> 1;
    int32_t n2 = n - n1;
    float s1 = cece_bits_to_f32((int32_t)((uint32_t)(n1 + 127) << 23));
    float s2 = cece_bits_to_f32((int32_t)((uint32_t)(n2 + 127) << 23));
    return cece_exp_poly_f32(r) * s1 * s2;
}

/* e^x for a max-shifted argument, x <= 0 (or NaN): the exps of a softmax. Cheaper than
 * cece_exp_f32 and as accurate (same reduction and polynomial):
 * - one scaling: the exponent field comes straight from the bits of the rounding constant
 *   k, biased by 127 + 64 so that 2^(n + 64) is a normal number down to x = -104; the final
 *   multiply by 2^-64 is exact for a normal result and rounds a subnormal one once, as the
 *   two-factor scaling of cece_exp_f32 does;
 * - no clamps: below -104 (where e^x rounds to 0, and for -inf, the masked logits of a
 *   vocabulary) a select gives 0, so that those never run the subnormal arithmetic that
 *   costs a microcode assist on x86; NaN flows through the arithmetic.
 * x must stay below 44 (the scale's exponent field would overflow): shifted arguments are
 * <= 0, up to a rounding of the softcap. */
#define CECE_MAGIC_SHIFTED_F32 (CECE_MAGIC_F32 + 191.0f)
#define CECE_EXPF_ZERO_BELOW -104.0f
CECE_INLINE float cece_exp_shifted_f32(float x) {
    float k = CECE_FMAF(x, CECE_EXPF_LOG2E, CECE_MAGIC_SHIFTED_F32);
    float nf = k - CECE_MAGIC_SHIFTED_F32; /* n = round(x / ln2), exactly */
    float r = CECE_FMAF(-nf, CECE_EXPF_LN2_HI, x);
    r = CECE_FMAF(-nf, CECE_EXPF_LN2_LO, r);
    /* k's bits are those of the magic constant plus 191 + n; the constant's own bits shift
     * out past bit 31, leaving (n + 64 + 127) << 23. */
    float scale = cece_bits_to_f32((int32_t)((uint32_t)cece_f32_to_bits(k) << 23));
    float e = (cece_exp_poly_f32(r) * scale) * 5.42101086242752217e-20f; /* 2^-64 */
    return x < CECE_EXPF_ZERO_BELOW ? 0.0f : e;
}

/* The small-C float32 forward shifts a row by its label's logit (cece_kernel_small.h): its
 * exps' arguments z_c - z_y are held at CECE_LABEL_X_MAX (within the shifted exp's range),
 * and a block with a row whose sum of them exceeds CECE_LABEL_REST_MAX = e^40 (an argument
 * above 40), a NaN, or a label on +inf is done again shifted by its maxima. */
#define CECE_LABEL_X_MAX 43.0f
#define CECE_LABEL_REST_MAX 2.35385266837019985e17f

/* The exp of the float32 label-shifted forward at the AVX-512 level (cece_avx512.h), e^x for
 * x = z_c - z_y: two vector operations fewer than cece_exp_shifted_f32, in a loop that is most
 * of a 10-class forward (measured: that forward 8% faster). x = (n + j/32) ln2 + r with
 * |r| <= ln2/64; 2^(j/32) comes from a 32-entry table (one vpermt2ps, indexed by the low five
 * bits of the rounding constant's sum), e^r from a quadratic, 1 + q with q = (c1 + c2 r) r,
 * minimax for the relative error (5.3e-8; benchmarks/exp_coefficients.py), p = 2^(j/32) (1 + q)
 * in one fused multiply-add and p * 2^n by vscalef. Max error 1.74 ulp over every float32 in
 * [-104, 88.72] (benchmarks/exp_accuracy.py; the polynomial form: 0.91), within the 2 ulp
 * the kernels aim for. 1 + c1 r + c2 r^2 has no real zero (c1^2 < 4 c2), so p > 0 whatever r
 * is: an argument so large that its r is garbage (beyond about 1.8e5) still gives +inf, which
 * sends the block to be done again with its maxima, never 0 or a negative. The other levels
 * have no one-instruction table lookup (AVX2 would need four) and keep the polynomial.
 *
 * cece_exp_label_f32 is that vector form written out in scalar C, step for step, with true
 * fused multiply-adds at every level (a libm call where the target has no FMA): the tests hold
 * the AVX-512 form to it bit for bit (cece._core.exp_array(label=True) at each level). */
#define CECE_LABEL_EXP_MAGIC 393216.0f /* 1.5 * 2^18: k's last five bits are 32nds */
#define CECE_LABEL_EXP_C1 1.00001466274261474609375f
#define CECE_LABEL_EXP_C2 0.500000178813934326171875f
#if defined(__GNUC__) || defined(__clang__)
__attribute__((aligned(64)))
#endif
static const float cece_exp2_32nds[32] = { /* 2^(j/32), rounded to nearest */
    0x1p+0f, 0x1.059b0ep+0f, 0x1.0b5586p+0f, 0x1.11301ep+0f,
    0x1.172b84p+0f, 0x1.1d4874p+0f, 0x1.2387a6p+0f, 0x1.29e9ep+0f,
    0x1.306fep+0f, 0x1.371a74p+0f, 0x1.3dea64p+0f, 0x1.44e086p+0f,
    0x1.4bfdaep+0f, 0x1.5342b6p+0f, 0x1.5ab07ep+0f, 0x1.6247ecp+0f,
    0x1.6a09e6p+0f, 0x1.71f75ep+0f, 0x1.7a1148p+0f, 0x1.82589ap+0f,
    0x1.8ace54p+0f, 0x1.93737cp+0f, 0x1.9c4918p+0f, 0x1.a5503cp+0f,
    0x1.ae89fap+0f, 0x1.b7f77p+0f, 0x1.c199bep+0f, 0x1.cb720ep+0f,
    0x1.d5818ep+0f, 0x1.dfc974p+0f, 0x1.ea4afap+0f, 0x1.f50766p+0f,
};

CECE_INLINE float cece_exp_label_f32(float x) {
    const float k = __builtin_fmaf(x, CECE_EXPF_LOG2E, CECE_LABEL_EXP_MAGIC);
    const float nf = k - CECE_LABEL_EXP_MAGIC; /* n + j/32, exactly */
    float r = __builtin_fmaf(-nf, CECE_EXPF_LN2_HI, x);
    r = __builtin_fmaf(-nf, CECE_EXPF_LN2_LO, r);
    const float t = cece_exp2_32nds[cece_f32_to_bits(k) & 31];
    const float q = __builtin_fmaf(CECE_LABEL_EXP_C2, r, CECE_LABEL_EXP_C1) * r;
    const float p = __builtin_fmaf(t, q, t);
    if (x < CECE_EXPF_ZERO_BELOW) return 0.0f;
    if (nf != nf) return nf; /* NaN */
    /* vscalef: p * 2^floor(nf), rounded once (ldexpf rounds a subnormal result once too) */
    const float n = floorf(nf);
    return ldexpf(p, n > 300.0f ? 300 : (n < -300.0f ? -300 : (int)n));
}

/* e^x - 1 without cancellation near 0, for the tanh below. */
CECE_INLINE float cece_expm1_f32(float x) {
    float xc = x < -87.0f ? -87.0f : x; /* NaN passes through, as in cece_exp_f32 */
    xc = xc > 87.0f ? 87.0f : xc;
    int32_t n;
    float r = cece_reduce_f32(xc, &n);
    float s = cece_bits_to_f32((int32_t)((uint32_t)(n + 127) << 23));
    return (s - 1.0f) + s * (r * cece_expm1_q_f32(r));
}

CECE_INLINE float cece_tanh_f32(float x) {
    float ax = x < 0.0f ? -x : x;
    float em = cece_expm1_f32(-2.0f * ax);  /* in (-1, 0] */
    float t = -em / (2.0f + em);
    return x < 0.0f ? -t : t;               /* NaN: em is NaN, so t is NaN */
}

/* ---- float64 ---------------------------------------------------------------------- */

/* 1.5 * 2^52 */
#define CECE_MAGIC_F64 6755399441055744.0

/* (e^r - 1) / r for |r| <= ln2/2: Taylor to degree 12 (truncation ~4e-18). */
CECE_INLINE double cece_expm1_q_f64(double r) {
    double q = 1.0 / 6227020800.0;
    q = CECE_FMA(q, r, 1.0 / 479001600.0);
    q = CECE_FMA(q, r, 1.0 / 39916800.0);
    q = CECE_FMA(q, r, 1.0 / 3628800.0);
    q = CECE_FMA(q, r, 1.0 / 362880.0);
    q = CECE_FMA(q, r, 1.0 / 40320.0);
    q = CECE_FMA(q, r, 1.0 / 5040.0);
    q = CECE_FMA(q, r, 1.0 / 720.0);
    q = CECE_FMA(q, r, 1.0 / 120.0);
    q = CECE_FMA(q, r, 1.0 / 24.0);
    q = CECE_FMA(q, r, 1.0 / 6.0);
    q = CECE_FMA(q, r, 0.5);
    return CECE_FMA(q, r, 1.0);
}

/* As for float32: the float64 exp's constants, shared with cece_avx512.h (fdlibm's ln2_hi,
 * whose product with any n is exact; SLEEF's coefficients). */
#define CECE_EXP_LOG2E 1.4426950408889634074
#define CECE_EXP_LN2_HI 6.93147180369123816490e-01
#define CECE_EXP_LN2_LO 1.90821492927058770002e-10
#define CECE_EXP_C2 0.5
#define CECE_EXP_C3 0.166666666666666851703837
#define CECE_EXP_C4 0.0416666666666665047591422
#define CECE_EXP_C5 0.00833333333331652721664984
#define CECE_EXP_C6 0.00138888888889774492207962
#define CECE_EXP_C7 0.000198412698960509205564975
#define CECE_EXP_C8 2.4801587159235472998791e-05
#define CECE_EXP_C9 2.75572362911928827629423e-06
#define CECE_EXP_C10 2.75573911234900471893338e-07
#define CECE_EXP_C11 2.51112930892876518610661e-08
#define CECE_EXP_C12 2.08860621107283687536341e-09

CECE_INLINE double cece_reduce_f64(double x, int64_t *n) {
    double k = CECE_FMA(x, CECE_EXP_LOG2E, CECE_MAGIC_F64);
    *n = cece_f64_to_bits(k) - cece_f64_to_bits(CECE_MAGIC_F64);
    double nf = k - CECE_MAGIC_F64;
    double r = CECE_FMA(-nf, CECE_EXP_LN2_HI, x);
    return CECE_FMA(-nf, CECE_EXP_LN2_LO, r);
}

/* e^r for |r| <= ln2/2: 1 + r + r^2 * u(r), u of degree 10 (SLEEF's minimax
 * coefficients), by Estrin's scheme. */
CECE_INLINE double cece_exp_poly_f64(double r) {
    double r2 = r * r, r4 = r2 * r2;
    double p01 = CECE_FMA(CECE_EXP_C3, r, CECE_EXP_C2);
    double p23 = CECE_FMA(CECE_EXP_C5, r, CECE_EXP_C4);
    double p45 = CECE_FMA(CECE_EXP_C7, r, CECE_EXP_C6);
    double p67 = CECE_FMA(CECE_EXP_C9, r, CECE_EXP_C8);
    double p89 = CECE_FMA(CECE_EXP_C11, r, CECE_EXP_C10);
    double q0 = CECE_FMA(p23, r2, p01);
    double q1 = CECE_FMA(p67, r2, p45);
    double q2 = CECE_FMA(CECE_EXP_C12, r2, p89);
    double u = CECE_FMA(CECE_FMA(q2, r4, q1), r4, q0);
    return CECE_FMA(r2, u, r + 1.0);
}

/* As cece_exp_f32, for double. */
CECE_INLINE double cece_exp_f64(double x) {
    double xc = x < -746.0 ? -746.0 : x;
    xc = xc > 710.0 ? 710.0 : xc;
    int64_t n;
    double r = cece_reduce_f64(xc, &n);
    int64_t n1 = n >> 1;
    int64_t n2 = n - n1;
    double s1 = cece_bits_to_f64((int64_t)((uint64_t)(n1 + 1023) << 52));
    double s2 = cece_bits_to_f64((int64_t)((uint64_t)(n2 + 1023) << 52));
    return cece_exp_poly_f64(r) * s1 * s2;
}

/* As cece_exp_shifted_f32, for double: a select below -746, where e^x rounds to 0. */
#define CECE_MAGIC_SHIFTED_F64 (CECE_MAGIC_F64 + 1087.0)
#define CECE_EXP_ZERO_BELOW -746.0
CECE_INLINE double cece_exp_shifted_f64(double x) {
    double k = CECE_FMA(x, CECE_EXP_LOG2E, CECE_MAGIC_SHIFTED_F64);
    double nf = k - CECE_MAGIC_SHIFTED_F64;
    double r = CECE_FMA(-nf, CECE_EXP_LN2_HI, x);
    r = CECE_FMA(-nf, CECE_EXP_LN2_LO, r);
    double scale = cece_bits_to_f64((int64_t)((uint64_t)cece_f64_to_bits(k) << 52));
    double e = (cece_exp_poly_f64(r) * scale) * 5.42101086242752217e-20; /* 2^-64 */
    return x < CECE_EXP_ZERO_BELOW ? 0.0 : e;
}

CECE_INLINE double cece_expm1_f64(double x) {
    double xc = x < -708.0 ? -708.0 : x;
    xc = xc > 708.0 ? 708.0 : xc;
    int64_t n;
    double r = cece_reduce_f64(xc, &n);
    double s = cece_bits_to_f64((int64_t)((uint64_t)(n + 1023) << 52));
    return (s - 1.0) + s * (r * cece_expm1_q_f64(r));
}

CECE_INLINE double cece_tanh_f64(double x) {
    double ax = x < 0.0 ? -x : x;
    double em = cece_expm1_f64(-2.0 * ax);
    double t = -em / (2.0 + em);
    return x < 0.0 ? -t : t;
}

/* log(x) for finite x > 0, or NaN (the kernels take it of sums of exponentials, >= 1).
 * fdlibm's reduction x = 2^e * (1 + f) with sqrt(2)/2 <= 1 + f < sqrt(2) and its minimax
 * polynomial in s = f / (2 + f): under 1 ulp, and vectorisable (no table, no branch). */
CECE_INLINE double cece_log_f64(double x) {
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    int64_t bits = cece_f64_to_bits(x);
    int64_t e = ((bits >> 52) & 0x7ff) - 1023;
    double m = cece_bits_to_f64((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
    int64_t big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e += big;
    /* (double)e without an int64 conversion instruction (AVX2 has none). */
    double dk = cece_bits_to_f64(cece_f64_to_bits(CECE_MAGIC_F64) + e) - CECE_MAGIC_F64;
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double R = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7))) + w * (Lg2 + w * (Lg4 + w * Lg6));
    double hfsq = 0.5 * f * f;
    double y = dk * 6.93147180369123816490e-01 -
               ((hfsq - (s * (hfsq + R) + dk * 1.90821492927058770002e-10)) - f);
    return y + (x - x); /* NaN in, NaN out */
}

/* log(1 + u) for u >= 0 (or NaN), accurate for tiny u as well: with w = 1 + u rounded and
 * c = u - (w - 1) its rounding error (exact), log1p(u) = log(w) + c / w, and near w = 1,
 * where the correction matters, 1 / w = 2 - w to first order; from w = 2 on, c / w is below
 * half an ulp of log(w) and is dropped. No division (a vector division costs as much as the
 * rest of the function). */
CECE_INLINE double cece_log1p_f64(double u) {
    double w = 1.0 + u;
    double c = u - (w - 1.0);
    return cece_log_f64(w) + c * (w < 2.0 ? 2.0 - w : 0.0);
}

/* log(x) in float for finite x > 0, or NaN: Cephes' logf (x = 2^e (1 + f), sqrt(1/2) <=
 * 1 + f < sqrt(2), log(1 + f) = f - f^2/2 + f^3 P(f), about 1 ulp), without a division. */
CECE_INLINE float cece_log_f32(float x) {
    int32_t bits = cece_f32_to_bits(x);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    float m = cece_bits_to_f32((bits & 0x007fffff) | 0x3f800000);
    int32_t big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e += big;
    float fe = (float)e;
    float f = m - 1.0f;
    float z = f * f;
    float p = 7.0376836292e-2f;
    p = CECE_FMAF(p, f, -1.1514610310e-1f);
    p = CECE_FMAF(p, f, 1.1676998740e-1f);
    p = CECE_FMAF(p, f, -1.2420140846e-1f);
    p = CECE_FMAF(p, f, 1.4249322787e-1f);
    p = CECE_FMAF(p, f, -1.6668057665e-1f);
    p = CECE_FMAF(p, f, 2.0000714765e-1f);
    p = CECE_FMAF(p, f, -2.4999993993e-1f);
    p = CECE_FMAF(p, f, 3.3333331174e-1f);
    float y = p * f * z;
    y = CECE_FMAF(fe, -2.12194440e-4f, y);
    y = CECE_FMAF(z, -0.5f, y);
    float r = f + y;
    r = CECE_FMAF(fe, 0.693359375f, r);
    return r + (x - x); /* NaN in, NaN out */
}

/* As cece_log1p_f64, in float. */
CECE_INLINE float cece_log1p_f32(float u) {
    float w = 1.0f + u;
    float c = u - (w - 1.0f);
    return cece_log_f32(w) + c * (w < 2.0f ? 2.0f - w : 0.0f);
}

#endif /* CECE_MATH_H */
