/* The cross-entropy entry point: per-call constants, work items, threads, sums.
 * Part of the kernel body (cece_kernel_body.h): included once per dtype and SIMD level, with
 * T, SUF, FN and the VEXP family defined; no include guard. */

/* ---- entry points ---------------------------------------------------------------------- */

/* One work item: its positions' loss and denominator sums, in a fixed order (cece_sums). */
static void FN(ce_item)(const cece_ce_args *a, const FN(consts) *k, const cece_partition *part,
                        int64_t it, double *partial, int64_t *bad) {
    int64_t p0, p1;
    cece_item_range(part, a->inner, it, &p0, &p1);
    cece_sums acc;
    cece_sums_clear(&acc);
    if (!a->from_logits) FN(ce_prob_inputs)(a, k, p0, p1, &acc, bad);
    else if (a->inner == 1 && a->classes < CECE_SMALL_C && k->plain) FN(ce_small_plain)(a, k, p0, p1, &acc, bad);
    else if (a->inner == 1 && a->classes < CECE_SMALL_C) FN(ce_small_rows)(a, k, p0, p1, &acc, bad);
    else if (a->inner == 1) FN(ce_rows)(a, k, p0, p1, &acc, bad);
    else FN(ce_tile)(a, k, p0, p1, &acc, bad);
    partial[2 * it] = cece_lanes_total(acc.loss);
    partial[2 * it + 1] = cece_lanes_total(acc.den);
}

int FN(cross_entropy)(const cece_ce_args *a, cece_ce_result *res) {
    const cece_partition part = cece_partition_of(a->outer, a->classes, a->inner);
    FN(consts) k;
    k.keep = 1.0 - a->label_smoothing;
    k.uni = a->label_smoothing / (double)a->classes;
    k.weight_sum = (double)a->classes;
    if (a->class_weight) {
        k.weight_sum = 0.0;
        for (int64_t j = 0; j < a->classes; j++) k.weight_sum += a->class_weight[j];
    }
    k.z_loss = a->z_loss;
    k.grad_scale = a->grad_scale;
    k.has_cap = a->softcap > 0.0;
    k.has_w = a->class_weight != NULL;
    k.cap = k.has_cap ? (T)a->softcap : (T)1;
    k.inv_cap = k.has_cap ? (T)(1.0 / a->softcap) : (T)1;
    /* The gradient pass can reuse exps stored in grad by the first pass, unless it still
     * needs the logits that an in-place first pass would overwrite (softcap's chain rule,
     * the smoothing and probability-target dot products). */
    k.plain = a->labels != NULL && !a->class_weight && !a->sample_weight &&
              a->label_smoothing == 0.0 && a->z_loss == 0.0 && !k.has_cap;
    k.store_exp = a->grad != NULL && !k.has_cap &&
                  (a->grad != a->logits || (a->labels != NULL && k.uni == 0.0));

    double stack_partial[2 * CECE_STACK_ITEMS];
    double *partial = part.items <= CECE_STACK_ITEMS
                          ? stack_partial
                          : (double *)malloc(2 * (size_t)part.items * sizeof(double));
    if (!partial) return CECE_ERR_NOMEM;
    int64_t bad = INT64_MAX;
    const int threads = cece_threads_for(a->num_threads, a->outer * a->classes * a->inner, part.items);
    if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static) reduction(min : bad)
        for (int64_t it = 0; it < part.items; it++) FN(ce_item)(a, &k, &part, it, partial, &bad);
    } else { /* no parallel region at all: a small call pays nothing for OpenMP */
        for (int64_t it = 0; it < part.items; it++) FN(ce_item)(a, &k, &part, it, partial, &bad);
    }
    res->loss_sum = 0.0;
    res->denominator = 0.0;
    for (int64_t it = 0; it < part.items; it++) {
        res->loss_sum += partial[2 * it];
        res->denominator += partial[2 * it + 1];
    }
    res->bad_position = bad == INT64_MAX ? -1 : bad;
    if (partial != stack_partial) free(partial);
    return CECE_OK;
}
