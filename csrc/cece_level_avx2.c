/* The kernels compiled for AVX2 + FMA (Haswell, Zen and later); picked at import when the
 * CPU has them. */
#include "cece_levels.h"
#if CECE_HAVE_X86_LEVELS
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
#define CECE_LEVEL avx2
#include "cece_instantiate.h"
#ifdef __clang__
#pragma clang attribute pop
#endif
#else
typedef int cece_no_avx2_level; /* ISO C wants a translation unit to declare something */
#endif
