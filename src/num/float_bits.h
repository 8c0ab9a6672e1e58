/* Bit-level views of FP32 shared by the codecs and quantizers, which work on
 * the bits so their results never depend on MXCSR (rounding mode, FTZ/DAZ). */
#ifndef SPARQ_NUM_FLOAT_BITS_H
#define SPARQ_NUM_FLOAT_BITS_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f32_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline float bits_f32(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* Shifts right by sh (1..31), rounding to nearest with ties to even. */
static inline uint32_t shift_right_rne(uint32_t v, unsigned sh) {
  return (v + ((1u << (sh - 1)) - 1u) + ((v >> sh) & 1u)) >> sh;
}

#endif
