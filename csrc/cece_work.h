/* How a call is cut into work items and spread over threads.
 *
 * The cut depends on the shape only, never on the thread count, and every sum is first
 * taken within an item (in position order) and then over items (in item order): that is
 * what makes results bitwise identical whatever num_threads is.
 */
#ifndef CECE_WORK_H
#define CECE_WORK_H

#include <stdint.h>

#include "cece.h"
#include "cece_inline.h"
#ifdef _OPENMP
#include <omp.h>
#endif


/* Positions side by side in one tile of the (outer, C, inner) layout: the kernels vectorise
 * along inner, so a tile is a row of TILE logits per class. */
#define CECE_TILE 64
/* Rows shorter than this are transposed in blocks and run as tiles. */
/* Rows shorter than this are transposed in blocks and run as tiles: below it, the per-row work
 * of the row kernel (a max, two reductions and a log, each a chain of dependent steps) costs
 * more than the transposition (measured, float32, one thread: 0.5-0.6 ns a logit as tiles from
 * C = 10 to 256; as rows 5.9 at C = 16, 1.0 at 128, 0.6 at 256, 0.4 at 1000). */
#define CECE_SMALL_C 256
/* A block of short rows holds at most this many logits (16 KiB of float, 32 of double, in L1),
 * and CECE_TILE rows or fewer. */
#define CECE_BLOCK_ELEMS 4096

/* Rows in one transposed block of rows of C classes: CECE_TILE, fewer for longer rows, a
 * multiple of 16 (a vector of floats, and of the sum lanes). */
static inline int64_t cece_block_rows(int64_t classes) {
    int64_t rows = CECE_BLOCK_ELEMS / (classes > 0 ? classes : 1);
    rows = rows < CECE_TILE ? rows - rows % 16 : CECE_TILE;
    return rows > 16 ? rows : 16;
}
/* The tiles sum the exps of this many classes in T before adding them up in float64. */
#define CECE_SUM_BLOCK 16
/* A long row is streamed in chunks of this many logits (a chunk stays in L1). */
#define CECE_CHUNK 1024
/* Rows of up to CECE_CHUNK * CECE_MAX_CHUNKS classes keep per-chunk maxima on the stack and
 * compute one exp per logit in the fused pass; longer rows compute the exp twice. */
#define CECE_MAX_CHUNKS 1024
/* Rows of the (N, C) layout grouped into one item: about this many logits per item. */
#define CECE_ITEM_ELEMS 16384
/* Rows shorter than CECE_SMALL_C: items in whole units of CECE_SMALL_ITEM_ROWS rows (the
 * small-C kernels' blocks are 16, 32 or 64 rows; a partial block costs a full one), of about
 * CECE_SMALL_ITEM_ELEMS logits, but enough of them for 16 threads where a call is large enough
 * to be split (none below CECE_SMALL_ITEM_MIN logits); their count a power of two up to 16,
 * then a multiple of 16, so that power-of-two thread counts get equal shares. An item costs
 * about 0.1 us beyond its rows (a tenth of an 8192-logit item's float32 forward; measured at
 * 2 threads, 65536 x 10 float32 forward: 86 items of 7680 logits 3-4% slower than 32, and
 * 32 within 1% of 16). */
#define CECE_SMALL_ITEM_ELEMS 32768
#define CECE_SMALL_ITEM_MIN 8192
#define CECE_SMALL_ITEM_ROWS 64
/* Calls with at most this many items keep their partial sums on the stack. */
#define CECE_STACK_ITEMS 64
/* Below this many logits a call stays on the calling thread: waking a team costs more. */
#define CECE_PARALLEL_MIN_ELEMS 65536

typedef struct {
    int64_t positions;      /* outer * inner */
    int64_t unit, units;    /* inner == 1: items are whole units of this many rows */
    int64_t tiles_per_outer;/* inner > 1 */
    int64_t items;
} cece_partition;

static inline cece_partition cece_partition_of(int64_t outer, int64_t classes, int64_t inner) {
    cece_partition part;
    part.positions = outer * inner;
    part.unit = part.units = part.tiles_per_outer = 0;
    if (inner == 1 && classes < CECE_SMALL_C) {
        const int64_t logits = outer * classes, spread = logits / CECE_SMALL_ITEM_MIN;
        int64_t want = (logits + CECE_SMALL_ITEM_ELEMS - 1) / CECE_SMALL_ITEM_ELEMS, items = 1;
        const int64_t enough = spread < 16 ? spread : 16; /* items for 16 threads */
        if (logits >= CECE_PARALLEL_MIN_ELEMS && want < enough) want = enough;
        while (items < want && items < 16) items *= 2;
        if (want > 16) items = (want + 15) / 16 * 16;
        part.unit = CECE_SMALL_ITEM_ROWS;
        part.units = (outer + part.unit - 1) / part.unit;
        part.items = items < part.units ? items : part.units;
    } else if (inner == 1) {
        const int64_t per = CECE_ITEM_ELEMS / (classes > 0 ? classes : 1);
        const int64_t rows = per > 0 ? per : 1;
        part.unit = 1;
        part.units = outer;
        part.items = (outer + rows - 1) / rows;
    } else {
        part.tiles_per_outer = (inner + CECE_TILE - 1) / CECE_TILE;
        part.items = outer * part.tiles_per_outer;
    }
    return part;
}

/* Item k covers positions [*p0, *p1); with inner > 1 they lie within one outer index. With
 * inner == 1, the first units % items items have one unit more than the others. */
static inline void cece_item_range(const cece_partition *part, int64_t inner, int64_t k,
                                   int64_t *p0, int64_t *p1) {
    if (inner == 1) {
        const int64_t q = part->units / part->items, r = part->units % part->items;
        const int64_t u0 = k * q + (k < r ? k : r), u1 = u0 + q + (k < r);
        const int64_t end = u1 * part->unit;
        *p0 = u0 * part->unit;
        *p1 = end < part->positions ? end : part->positions;
    } else {
        int64_t o = k / part->tiles_per_outer;
        int64_t i0 = (k % part->tiles_per_outer) * CECE_TILE;
        int64_t i1 = i0 + CECE_TILE < inner ? i0 + CECE_TILE : inner;
        *p0 = o * inner + i0;
        *p1 = o * inner + i1;
    }
}

static inline int cece_threads_for(int requested, int64_t elements, int64_t items) {
#ifdef _OPENMP
    int n = requested > 0 ? requested : omp_get_max_threads();
    if (elements < CECE_PARALLEL_MIN_ELEMS) n = 1;
    if ((int64_t)n > items) n = (int)items;
    return n > 0 ? n : 1;
#else
    (void)requested; (void)elements; (void)items;
    return 1;
#endif
}

/* Sums over an item's positions (the loss, "mean"'s denominator) are kept in lanes: position
 * first + i goes to lane i % CECE_SUM_LANES, and the lanes are added in order at the item's
 * end. A fixed order, so the same bits for any thread count, without the chain of dependent
 * additions that plain position order costs (4 cycles a position, a third of a small-C
 * row's budget). The kernels and cece_denominator use the same lanes, so their
 * denominators agree to the bit. */
#define CECE_SUM_LANES 8
typedef struct {
    double loss[CECE_SUM_LANES], den[CECE_SUM_LANES];
} cece_sums;

static inline void cece_sums_clear(cece_sums *acc) {
    for (int l = 0; l < CECE_SUM_LANES; l++) acc->loss[l] = acc->den[l] = 0.0;
}

static inline double cece_lanes_total(const double *lanes) {
    double total = 0.0;
    for (int l = 0; l < CECE_SUM_LANES; l++) total += lanes[l];
    return total;
}

/* lanes[i % CECE_SUM_LANES] += v[i] for i < n <= CECE_TILE; v has CECE_TILE entries. */
static inline void cece_add_to_lanes(double *lanes, const double *v, int64_t n) {
    for (int64_t i0 = 0; i0 < n; i0 += CECE_SUM_LANES) {
#pragma omp simd
        for (int64_t l = 0; l < CECE_SUM_LANES; l++) lanes[l] += i0 + l < n ? v[i0 + l] : 0.0;
    }
}

/* a[0] + ... + a[15] added pairwise in a fixed tree: the same bits every time, and a chain
 * of four additions rather than fifteen. */
static inline double cece_sum16(const double *a) {
    double b[8], c[4];
    for (int i = 0; i < 8; i++) b[i] = a[i] + a[i + 8];
    for (int i = 0; i < 4; i++) c[i] = b[i] + b[i + 4];
    return (c[0] + c[2]) + (c[1] + c[3]);
}

/* Keras's backend.epsilon(): from_logits=False clips probabilities to [eps, 1 - eps]. */
#define CECE_CLIP_EPSILON 1e-7

/* Label status at a position: the class index, or one of these. */
#define CECE_IGNORED (-1)
#define CECE_BAD (-2)
#define CECE_NO_LABEL (-3) /* probability targets */

/* A position's sample weight s, label status y and class weight w_y; returns its share of
 * "mean"'s denominator. Both the kernels and cece_denominator sum these in position order,
 * which is why their denominators agree to the bit. */
static inline double cece_position_weight(const cece_ce_args *a, int64_t p, int64_t *y,
                                          double *s, double *wy) {
    *s = a->sample_weight ? a->sample_weight[p] : 1.0;
    *wy = 1.0;
    if (!a->labels) {
        *y = CECE_NO_LABEL;
        return *s;
    }
    int64_t label = a->labels[p];
    if (label == a->ignore_index) *y = CECE_IGNORED;
    else if (label < 0 || label >= a->classes) *y = CECE_BAD;
    else *y = label;
    if (*y < 0) return 0.0;
    if (a->class_weight) *wy = a->class_weight[*y];
    return *s * *wy;
}

#endif /* CECE_WORK_H */
