/* Ends one dtype's instantiation in cece_instantiate.h: the names it defined before
 * including the kernel body, undefined so that the next dtype can define them. No include
 * guard: included once per dtype. */
#undef T
#undef SUF
#undef VEXP
#undef VEXPS
#undef VEXP_LABEL
#undef VTANH
#undef VLOG1P
#undef ROWS_TO_TILE
#undef ROWS_TO_TILE_MAX
#undef TILE_TO_ROWS
#undef PICK_LABEL_LOGITS
#undef PICK_LABEL_ROWS
#undef SMALL_SUMS
#undef SMALL_PRODUCT
#undef LABEL_SUMS
#undef EXPS_ARRAY
#undef LABEL_EXPS_ARRAY
#undef BLOCKS_SUMEXP
#undef TILE_SUMEXP
