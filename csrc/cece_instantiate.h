/* Instantiates the kernel body for float and double at one instruction-set level.
 * The including file defines CECE_LEVEL (baseline, avx2, avx512) and, before including
 * this, sets the compiler's target for the rest of the file. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cece_avx512.h"
#include "cece_columns.h"
#include "cece_math.h"
#include "cece_work.h"

#define CECE_LEVEL_PASTE_(a, b) a##_##b
#define CECE_LEVEL_PASTE(a, b) CECE_LEVEL_PASTE_(a, b)

#define T float
#define SUF CECE_LEVEL_PASTE(f32, CECE_LEVEL)
#define VEXP cece_exp_f32
#define VEXPS cece_exp_shifted_f32
#define VEXP_LABEL cece_exp_label_f32
#define VTANH cece_tanh_f32
#define VLOG1P cece_log1p_f32
#define ROWS_TO_TILE cece_rows_to_tile_f32
#define ROWS_TO_TILE_MAX cece_rows_to_tile_max_f32
#define TILE_TO_ROWS cece_tile_to_rows_f32
#define PICK_LABEL_LOGITS cece_pick_f32
#define PICK_LABEL_ROWS cece_pick_rows_f32
#if defined(__AVX512F__)
#define SMALL_SUMS cece_small_sums_f32
#define SMALL_PRODUCT cece_small_product_f32
#define LABEL_SUMS cece_label_sums_f32
#define EXPS_ARRAY cece_exps_array_f32
#define LABEL_EXPS_ARRAY cece_exps_array_label_f32
#define BLOCKS_SUMEXP cece_blocks_sumexp_f32
#define TILE_SUMEXP cece_tile_sumexp_f32
#endif
#include "cece_kernel_body.h"
#include "cece_instantiate_undef.h"

#define T double
#define SUF CECE_LEVEL_PASTE(f64, CECE_LEVEL)
#define VEXP cece_exp_f64
#define VEXPS cece_exp_shifted_f64
#define VEXP_LABEL cece_exp_shifted_f64
#define VTANH cece_tanh_f64
#define VLOG1P cece_log1p_f64
#define ROWS_TO_TILE cece_rows_to_tile_f64
#define ROWS_TO_TILE_MAX cece_rows_to_tile_max_f64
#define TILE_TO_ROWS cece_tile_to_rows_f64
#define PICK_LABEL_LOGITS cece_pick_f64
#define PICK_LABEL_ROWS cece_pick_rows_f64
#if defined(__AVX512F__)
#define SMALL_SUMS cece_small_sums_f64
#define EXPS_ARRAY cece_exps_array_f64
#define BLOCKS_SUMEXP cece_blocks_sumexp_f64
#define TILE_SUMEXP cece_tile_sumexp_f64
#endif
#include "cece_kernel_body.h"
#include "cece_instantiate_undef.h"
