/* Helpers shared by the num/ tests. */
#ifndef SPARQ_TESTS_NUM_TEST_UTIL_H
#define SPARQ_TESTS_NUM_TEST_UTIL_H

#include <stdint.h>

#include "sparq/base.h"

/* ISA levels this process can run, from the top (sparq_isa_active is capped
 * by the CPU and by SPARQ_ISA); leaves the cap at its default. */
static inline int isa_levels(sparq_isa out[3]) {
  int k = 0;
  for (int l = SPARQ_ISA_AVX512; l >= SPARQ_ISA_SCALAR; l--) {
    sparq_set_isa_cap((sparq_isa)l);
    if (sparq_isa_active() == (sparq_isa)l) out[k++] = (sparq_isa)l;
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  return k;
}

/* The code each encoder documents for a NaN with FP32 bits u. */
static inline unsigned bf16_nan(uint32_t u) { return (u >> 16) | 0x0040u; }
static inline unsigned f16_nan(uint32_t u) { return ((u >> 16) & 0x8000u) | 0x7E00u | ((u >> 13) & 0x01FFu); }
static inline unsigned e4m3_nan(uint32_t u) { return ((u >> 24) & 0x80u) | 0x7Fu; }
static inline unsigned e5m2_nan(uint32_t u) { return ((u >> 24) & 0x80u) | 0x7Eu; }

#endif
