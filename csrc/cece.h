/* cece's C kernels: the whole interface the Cython wrapper sees. No Python in here.
 *
 * Arrays are C-contiguous and viewed as (outer, classes, inner): the class axis is the
 * middle one, so axis=-1 is inner == 1 (rows) and axis=1 of (N, C, H, W) is outer = N,
 * inner = H*W, with no transpose copy. A *position* p = o * inner + i indexes the batch.
 * Sizes are 64-bit throughout.
 */
#ifndef CECE_H
#define CECE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cece_ce_args {
    int64_t outer, classes, inner;
    const void *logits;          /* T[outer * classes * inner] */
    const int64_t *labels;       /* [outer * inner] class indices, or NULL */
    const void *probs;           /* T, laid out like logits: probability targets, or NULL */
    const double *class_weight;  /* [classes] or NULL (all ones) */
    const double *sample_weight; /* [outer * inner] or NULL (all ones) */
    int64_t ignore_index;
    double label_smoothing;
    double z_loss;
    double softcap;              /* <= 0: no softcap */
    int from_logits;
    void *losses;                /* T[outer * inner]: s_i * l_i per position, or NULL */
    void *grad;                  /* T like logits (may be logits itself), or NULL */
    double grad_scale;           /* multiplies every gradient: 1/D for "mean", else 1 */
    int num_threads;             /* <= 0: OpenMP's default */
} cece_ce_args;

typedef struct cece_ce_result {
    double loss_sum;        /* sum_i s_i * l_i, in a fixed order whatever the threads */
    double denominator;     /* "mean"'s D, in the same fixed order */
    int64_t bad_position;   /* first position whose label is out of range, or -1 */
} cece_ce_result;

enum { CECE_OK = 0, CECE_ERR_NOMEM = 1 };
enum { CECE_LOG_SOFTMAX = 0, CECE_SOFTMAX = 1, CECE_LOGSUMEXP = 2 };

/* Forward loss and/or gradient (whichever of losses/grad are set; the sums always). */
int cece_cross_entropy_f32(const cece_ce_args *args, cece_ce_result *result);
int cece_cross_entropy_f64(const cece_ce_args *args, cece_ce_result *result);

/* Only the denominator and the label check: an O(positions) pass over labels and weights,
 * run before a gradient whose scale depends on D, or that overwrites logits in place. Its
 * sum is bitwise the one cece_cross_entropy_* computes. */
int cece_denominator(const cece_ce_args *args, cece_ce_result *result);

/* log_softmax / softmax (out like x) or logsumexp (out[outer * inner]). */
int cece_normalize_f32(int op, int64_t outer, int64_t classes, int64_t inner,
                       const float *x, float *out, int num_threads);
int cece_normalize_f64(int op, int64_t outer, int64_t classes, int64_t inner,
                       const double *x, double *out, int num_threads);

/* Build and dispatch facts, for show_config() and the tests. */
int cece_openmp_enabled(void);
int cece_default_threads(void);
const char *cece_compiler(void);
const char *cece_simd_compiled(void);   /* space-separated levels in this build */
const char *cece_simd_supported(void);  /* those of them this CPU can run */
const char *cece_simd_selected(void);
/* Select a level by name ("baseline", "avx2", "avx512"); NULL or "" picks the best the
 * CPU supports. Returns 0, or -1 when the level is unknown, not compiled or unsupported. */
int cece_select_simd(const char *name);

/* The kernels' vector exp over an array, for accuracy tests (selected level): the general one,
 * the one for max-shifted arguments x <= 0 that the kernels' sums use, or the table form of the
 * float32 label-shifted forward (at AVX-512; its scalar model at the other levels, whose
 * kernels use the shifted one there; float64: the shifted one). */
enum { CECE_EXP_GENERAL = 0, CECE_EXP_SHIFTED = 1, CECE_EXP_LABEL = 2 };
void cece_exp_array_f32(const float *x, float *y, int64_t n, int kind);
void cece_exp_array_f64(const double *x, double *y, int64_t n, int kind);

/* Whether the AVX-512 float32 label-shifted forward takes its exps by the table form (1, the
 * default) or by the shifted polynomial of the other levels (0): a switch for the tests, which
 * then hold that kernel to the AVX2 one bit for bit. Returns the setting it replaces. */
int cece_set_label_exp_table(int on);

#ifdef __cplusplus
}
#endif
#endif /* CECE_H */
