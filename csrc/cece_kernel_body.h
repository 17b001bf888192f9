/* The cross-entropy and normalisation kernels, written once.
 *
 * Included once per dtype by every cece_level_*.c (through cece_instantiate.h), which defines
 * before including it:
 *   T             float or double
 *   SUF           the name suffix, e.g. f32_avx2
 *   VEXP, VEXPS   the vectorisable exp for T, and its cheaper form for max-shifted arguments
 *   VLOG1P, VTANH log1p and tanh for T                                (all in cece_math.h)
 *   ROWS_TO_TILE, ROWS_TO_TILE_MAX, TILE_TO_ROWS   short rows to tiles and back (cece_columns.h)
 *   PICK_LABEL_LOGITS                             each short row's label logit (cece_columns.h)
 *   SMALL_SUMS, BLOCKS_SUMEXP, TILE_SUMEXP, EXPS_ARRAY   optional: the level's own small-C
 *                 class loop, row chunk loop, tile class loop and shifted-exp array
 *                 (cece_avx512.h); without them the portable loops below
 * and undefines them after. The parts, in the order they build on each other: common
 * (constants, softcap), rows, tiles, small (the common small-C call), probs
 * (from_logits=False), entry (cross_entropy), normalize (log_softmax, softmax, logsumexp).
 *
 * docs/semantics.md has the maths; the names follow it: m = max, S = sum exp(z - m),
 * U = S - 1, a_j = w_j * t_j, A = sum a_j, D = mean's denominator.
 *
 * Two loop shapes: rows (inner == 1: a position's C logits are contiguous, loops run along
 * the classes) and tiles (inner > 1, or short rows transposed: CECE_TILE neighbouring
 * positions, loops run along them for each class). Small always-inline helpers take constant
 * flags (has_cap, has_w, ...) so that each combination compiles to its own tight vector loop.
 */

#define CECE_PASTE_(a, b) a##_##b
#define CECE_PASTE(a, b) CECE_PASTE_(a, b)
#define FN(name) CECE_PASTE(name, SUF)

#include "cece_kernel_common.h"
#include "cece_kernel_rows.h"
#include "cece_kernel_tiles.h"
#include "cece_kernel_small.h"
#include "cece_kernel_probs.h"
#include "cece_kernel_entry.h"
#include "cece_kernel_normalize.h"

#undef FN
#undef CECE_PASTE
#undef CECE_PASTE_
