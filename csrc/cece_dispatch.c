/* Runtime choice of the instruction-set level, the public entry points, and build facts.
 *
 * Each level (cece_level_*.c) is the same kernel source compiled for another target; at
 * import the Python layer calls cece_select_simd() with $CECE_SIMD (or nothing: the best the
 * CPU runs), and every entry point below forwards to the chosen level's functions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cece.h"
#include "cece_levels.h"
#include "cece_work.h"

#define CECE_DECLARE_LEVEL(L)                                                              \
    int cross_entropy_f32_##L(const cece_ce_args *, cece_ce_result *);                     \
    int cross_entropy_f64_##L(const cece_ce_args *, cece_ce_result *);                     \
    int normalize_f32_##L(int, int64_t, int64_t, int64_t, const float *, float *, int);    \
    int normalize_f64_##L(int, int64_t, int64_t, int64_t, const double *, double *, int);  \
    void exp_array_f32_##L(const float *, float *, int64_t, int);                          \
    void exp_array_f64_##L(const double *, double *, int64_t, int);

#define CECE_LEVEL_ENTRY(L, SUPPORTED)                                                     \
    {#L, SUPPORTED, cross_entropy_f32_##L, cross_entropy_f64_##L, normalize_f32_##L,       \
     normalize_f64_##L, exp_array_f32_##L, exp_array_f64_##L}

typedef struct {
    const char *name;
    int (*supported)(void);
    int (*ce_f32)(const cece_ce_args *, cece_ce_result *);
    int (*ce_f64)(const cece_ce_args *, cece_ce_result *);
    int (*norm_f32)(int, int64_t, int64_t, int64_t, const float *, float *, int);
    int (*norm_f64)(int, int64_t, int64_t, int64_t, const double *, double *, int);
    void (*exp_f32)(const float *, float *, int64_t, int);
    void (*exp_f64)(const double *, double *, int64_t, int);
} cece_level_table;

static int cece_always(void) { return 1; }

CECE_DECLARE_LEVEL(baseline)
#if CECE_HAVE_X86_LEVELS
CECE_DECLARE_LEVEL(avx2)
CECE_DECLARE_LEVEL(avx512)

static int cece_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int cece_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return cece_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}
#endif

/* Best last. */
static const cece_level_table cece_levels[] = {
    CECE_LEVEL_ENTRY(baseline, cece_always),
#if CECE_HAVE_X86_LEVELS
    CECE_LEVEL_ENTRY(avx2, cece_cpu_has_avx2),
    CECE_LEVEL_ENTRY(avx512, cece_cpu_has_avx512),
#endif
};
#define CECE_NLEVELS ((int)(sizeof(cece_levels) / sizeof(cece_levels[0])))

/* The one piece of process state: written by cece_select_simd (at import, or by the tests
 * that run every level), read by each call. A level is a pure function table, so a call that
 * races a switch still runs a complete, correct level. */
static const cece_level_table *cece_current = &cece_levels[0];

int cece_select_simd(const char *name) {
    if (name == NULL || name[0] == '\0') {
        for (int i = CECE_NLEVELS - 1; i >= 0; i--) {
            if (cece_levels[i].supported()) {
                cece_current = &cece_levels[i];
                return 0;
            }
        }
        return -1;
    }
    for (int i = 0; i < CECE_NLEVELS; i++) {
        if (strcmp(cece_levels[i].name, name) == 0) {
            if (!cece_levels[i].supported()) return -1;
            cece_current = &cece_levels[i];
            return 0;
        }
    }
    return -1;
}

const char *cece_simd_selected(void) { return cece_current->name; }

const char *cece_simd_compiled(void) {
#if CECE_HAVE_X86_LEVELS
    return "baseline avx2 avx512";
#else
    return "baseline";
#endif
}

const char *cece_simd_supported(void) {
#if CECE_HAVE_X86_LEVELS
    if (cece_cpu_has_avx512()) return "baseline avx2 avx512";
    if (cece_cpu_has_avx2()) return "baseline avx2";
#endif
    return "baseline";
}

int cece_cross_entropy_f32(const cece_ce_args *a, cece_ce_result *r) { return cece_current->ce_f32(a, r); }
int cece_cross_entropy_f64(const cece_ce_args *a, cece_ce_result *r) { return cece_current->ce_f64(a, r); }

int cece_normalize_f32(int op, int64_t outer, int64_t classes, int64_t inner, const float *x,
                       float *out, int num_threads) {
    return cece_current->norm_f32(op, outer, classes, inner, x, out, num_threads);
}

int cece_normalize_f64(int op, int64_t outer, int64_t classes, int64_t inner, const double *x,
                       double *out, int num_threads) {
    return cece_current->norm_f64(op, outer, classes, inner, x, out, num_threads);
}

void cece_exp_array_f32(const float *x, float *y, int64_t n, int kind) {
    cece_current->exp_f32(x, y, n, kind);
}
void cece_exp_array_f64(const double *x, double *y, int64_t n, int kind) {
    cece_current->exp_f64(x, y, n, kind);
}

/* Read by the AVX-512 float32 label-shifted forward once a block (cece_levels.h); a call that
 * races a switch runs some blocks with each exp, both within the kernels' accuracy. */
int cece_label_exp_table = 1;

int cece_set_label_exp_table(int on) {
    const int was = cece_label_exp_table;
    cece_label_exp_table = on != 0;
    return was;
}

static void cece_denominator_item(const cece_ce_args *a, const cece_partition *part, int64_t it,
                                  double *partial, int64_t *bad) {
    int64_t p0, p1, y;
    double s, wy;
    cece_sums acc;
    cece_sums_clear(&acc);
    cece_item_range(part, a->inner, it, &p0, &p1);
    for (int64_t p = p0; p < p1; p++) {
        acc.den[(p - p0) % CECE_SUM_LANES] += cece_position_weight(a, p, &y, &s, &wy);
        if (y == CECE_BAD && p < *bad) *bad = p;
    }
    partial[it] = cece_lanes_total(acc.den);
}

int cece_denominator(const cece_ce_args *a, cece_ce_result *res) {
    const cece_partition part = cece_partition_of(a->outer, a->classes, a->inner);
    double stack_partial[CECE_STACK_ITEMS];
    double *partial = part.items <= CECE_STACK_ITEMS
                          ? stack_partial
                          : (double *)malloc((size_t)part.items * sizeof(double));
    if (!partial) return CECE_ERR_NOMEM;
    int64_t bad = INT64_MAX;
    /* O(positions) work: threads only pay off for very large batches. */
    const int threads = cece_threads_for(a->num_threads, part.positions, part.items);
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : bad)
        for (int64_t it = 0; it < part.items; it++) cece_denominator_item(a, &part, it, partial, &bad);
    } else {
        for (int64_t it = 0; it < part.items; it++) cece_denominator_item(a, &part, it, partial, &bad);
    }
    res->loss_sum = 0.0;
    res->denominator = 0.0;
    for (int64_t it = 0; it < part.items; it++) res->denominator += partial[it];
    res->bad_position = bad == INT64_MAX ? -1 : bad;
    if (partial != stack_partial) free(partial);
    return CECE_OK;
}

int cece_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int cece_default_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

const char *cece_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
#define CECE_STR_(x) #x
#define CECE_STR(x) CECE_STR_(x)
    return "msvc " CECE_STR(_MSC_VER);
#else
    return "unknown";
#endif
}
