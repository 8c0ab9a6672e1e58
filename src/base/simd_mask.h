/* The lane mask of a loop's last, partial vector, shared by the AVX-512
 * kernels. */
#ifndef SPARQ_BASE_SIMD_MASK_H
#define SPARQ_BASE_SIMD_MASK_H

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <stdint.h>

/* The first min(left, 16) of 16 lanes; left >= 1. */
static inline __mmask16 simd_tail16(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}
#endif
#endif
