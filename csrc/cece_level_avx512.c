/* The kernels compiled for AVX-512 (F, BW, DQ, VL) with 512-bit vectors; picked at import
 * when the CPU has them. */
#include "cece_levels.h"
#if CECE_HAVE_X86_LEVELS
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#endif
#define CECE_LEVEL avx512
#include "cece_instantiate.h"
#ifdef __clang__
#pragma clang attribute pop
#endif
#else
typedef int cece_no_avx512_level;
#endif
