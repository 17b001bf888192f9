/* The small-C kernel's cost per logit against the large-C row kernel's, timed in C.
 *
 * bench_speed.py judges "small C at most 1.5x the row kernel per logit" on Python calls,
 * where a 65536 x 10 call (about 0.1 ms) also carries the call and thread hand-off costs
 * that a 2 ms call of 128 x 128256 hides. This times the kernels alone through csrc/cece.h,
 * both cases in the same rounds, so the two parts can be told apart. Both arrays get the
 * same pages (2 MiB-aligned and madvise(MADV_HUGEPAGE), as NumPy gives arrays of 4 MiB and
 * up; --small-pages for plain malloc), since the row kernel streams about 5% faster on huge
 * pages. Logits normal * 3 (Box-Muller), labels uniform, float32, "mean".
 *
 * Build from a source checkout (the flags setup.py uses) and run:
 *   gcc -O3 -fno-trapping-math -ffp-contract=off -fopenmp -Icsrc benchmarks/kernel_ratio.c \
 *       csrc/cece_dispatch.c csrc/cece_level_*.c -lm -o /tmp/kernel_ratio
 *   /tmp/kernel_ratio [--threads 2] [--rounds 7] [--small-pages]    (CECE_SIMD= picks a level)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cece.h"

typedef struct {
    const char *label;
    int64_t rows, classes;
    int calls; /* per round */
    float *logits;
    int64_t *labels;
    double *times;
    int ntimes;
} kcase;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *alloc(size_t bytes, int huge) {
    if (!huge) return malloc(bytes);
    const size_t two_mib = (size_t)2 << 20;
    bytes = (bytes + two_mib - 1) & ~(two_mib - 1);
    void *p = aligned_alloc(two_mib, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(kcase *k, int huge, uint64_t seed) {
    const int64_t n = k->rows * k->classes;
    k->logits = alloc((size_t)n * sizeof(float), huge);
    k->labels = malloc((size_t)k->rows * sizeof(int64_t));
    if (!k->logits || !k->labels) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint64_t s = seed;
#define NEXT() (s = s * 6364136223846793005ULL + 1442695040888963407ULL, (double)(s >> 11) * 0x1p-53)
    for (int64_t i = 0; i < n; i++) {
        const double u = NEXT(), v = NEXT();
        k->logits[i] = (float)(3.0 * sqrt(-2.0 * log(u + 0x1p-60)) * cos(6.283185307179586 * v));
    }
    for (int64_t i = 0; i < k->rows; i++) k->labels[i] = (int64_t)(NEXT() * k->classes);
#undef NEXT
}

static void run(const kcase *k, int threads) {
    cece_ce_args a;
    cece_ce_result r;
    memset(&a, 0, sizeof a);
    a.outer = k->rows;
    a.classes = k->classes;
    a.inner = 1;
    a.logits = k->logits;
    a.labels = k->labels;
    a.ignore_index = -100;
    a.from_logits = 1;
    a.grad_scale = 1.0;
    a.num_threads = threads;
    if (cece_cross_entropy_f32(&a, &r) != CECE_OK) {
        fprintf(stderr, "kernel failed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    int threads = 2, rounds = 7, huge = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--small-pages")) huge = 0;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--rounds R] [--small-pages]\n", argv[0]);
            return 2;
        }
    }
    if (cece_select_simd(getenv("CECE_SIMD")) != 0) { /* unset: the best the CPU runs */
        fprintf(stderr, "CECE_SIMD=%s is not available here\n", getenv("CECE_SIMD"));
        return 2;
    }
    kcase cases[2] = {{"65536x10", 65536, 10, 600, 0, 0, 0, 0},
                      {"128x128256", 128, 128256, 40, 0, 0, 0, 0}};
    for (int c = 0; c < 2; c++) {
        fill(&cases[c], huge, 1 + c);
        cases[c].times = malloc((size_t)rounds * cases[c].calls * sizeof(double));
        for (int w = 0; w < 3; w++) run(&cases[c], threads); /* warm-up: pages, caches */
    }
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < cases[c].calls; i++) {
                const double t0 = now();
                run(&cases[c], threads);
                cases[c].times[cases[c].ntimes++] = now() - t0;
            }
    printf("cece kernels in C, float32 forward, %d threads, %d rounds, %s pages (SIMD %s)\n",
           threads, rounds, huge ? "huge" : "small", cece_simd_selected());
    printf("%-12s %8s %10s %10s %12s %12s\n", "case", "calls", "min us", "median us",
           "min ns/logit", "med ns/logit");
    double per_logit[2][2];
    for (int c = 0; c < 2; c++) {
        kcase *k = &cases[c];
        qsort(k->times, k->ntimes, sizeof(double), by_value);
        const double n = (double)k->rows * k->classes;
        const double lo = k->times[0], med = k->times[k->ntimes / 2];
        per_logit[c][0] = lo * 1e9 / n;
        per_logit[c][1] = med * 1e9 / n;
        printf("%-12s %8d %10.1f %10.1f %12.4f %12.4f\n", k->label, k->ntimes, lo * 1e6,
               med * 1e6, per_logit[c][0], per_logit[c][1]);
    }
    printf("small C / row kernel per logit: %.2fx (min), %.2fx (median); the issue's limit 1.5x\n",
           per_logit[0][0] / per_logit[1][0], per_logit[0][1] / per_logit[1][1]);
    return 0;
}
