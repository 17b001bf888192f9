/* CECE_INLINE: inline, and forced. GCC does not inline a plain `static inline` function into
 * a loop compiled under another `#pragma GCC target` level, so without the attribute the
 * vector loops would call a scalar exp out of line. */
#ifndef CECE_INLINE_H
#define CECE_INLINE_H

#if defined(__GNUC__) || defined(__clang__)
#define CECE_INLINE static inline __attribute__((always_inline))
#else
#define CECE_INLINE static inline
#endif

#endif
