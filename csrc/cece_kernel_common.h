/* The per-call constants and the softcap, shared by every kernel.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

typedef struct {
    double keep;        /* 1 - label_smoothing */
    double uni;         /* label_smoothing / C */
    double weight_sum;  /* W = sum_j w_j */
    double z_loss;
    double grad_scale;
    int has_cap, has_w, store_exp;
    int plain; /* integer labels, no weights, smoothing, z-loss or softcap */
    T cap, inv_cap;
} FN(consts);

CECE_INLINE T FN(capped)(T x, const int has_cap, T cap, T inv_cap) {
    return has_cap ? cap * VTANH(x * inv_cap) : x;
}

/* d z_capped / d z, from z_capped itself. */
CECE_INLINE T FN(cap_chain)(T zc, const int has_cap, T inv_cap) {
    T u = zc * inv_cap;
    return has_cap ? (T)1 - u * u : (T)1;
}
