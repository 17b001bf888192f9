/* Which instruction-set levels this build compiles: every x86-64 build with GCC or clang
 * gets AVX2+FMA and AVX-512 variants beside the baseline; anything else only the baseline
 * (portable C, still vectorised to whatever the target's default flags allow). */
#ifndef CECE_LEVELS_H
#define CECE_LEVELS_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CECE_HAVE_X86_LEVELS 1
#else
#define CECE_HAVE_X86_LEVELS 0
#endif

/* The AVX-512 float32 label-shifted forward's choice of exp (cece_dispatch.c,
 * cece_set_label_exp_table): 1 the table form, 0 the polynomial. */
extern int cece_label_exp_table;

#endif
