/* Scalar twins of the Sage PV kernels (spec §2.6, §5): one key block of
 * P-tilde times V-hat added into FP32 O. Each performs the arithmetic of its
 * SIMD kernel in the same order, so the pairs agree bit for bit:
 *   BF16: per output, key pairs as vdpbf16ps does them: acc + p1 v1, then + p0 v0,
 *         each product exact in FP32 (8 x 8 significant bits), each add rounded;
 *         the FP22 modes sum each 32-key step from 0 and truncate acc + step;
 *   FP16: per output, key by key, one FP16 rounding per step as vfmadd231ph;
 *   U8:   exact int32 sums.
 * The flush O = alpha O + R is one fused multiply-add. */
#include <math.h>
#include <stdbool.h>

#include "kernels/attn_sage_internal.h"

static inline float bf16f(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* Rows go 4 at a time with their accumulators on the stack, each V row
 * converted once per 4 rows, and the channel loops innermost so they
 * vectorize; per output the operations and their order are the kernel's. */
enum { ROWS = 4, MAXDP = 256 };

void sage_pv_bf16_ref(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o, const float *alpha,
                      sage_accum accum, const uint8_t *npairs) {
  const bool single = accum == SAGE_ACC_SINGLE_F32 || accum == SAGE_ACC_SINGLE_F22;
  const bool f22 = accum == SAGE_ACC_SINGLE_F22 || accum == SAGE_ACC_TWO_F22;
  /* F22 modes sum each 32-key MMA step alone, then round it into the accumulator */
  const int steps = f22 ? 2 : 1, pairs = SAGE_BK / 2 / steps;
  float acc[ROWS][MAXDP], t[ROWS][MAXDP], v0[MAXDP], v1[MAXDP];
  for (int64_t r0 = 0; r0 < rows; r0 += ROWS) {
    const int64_t nr = rows - r0 < ROWS ? rows - r0 : ROWS;
    for (int64_t r = 0; r < nr; r++)
      for (int64_t c = 0; c < dp; c++) acc[r][c] = single ? o[(r0 + r) * dp + c] * alpha[r0 + r] : 0.0f;
    for (int st = 0; st < steps; st++) {
      for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < dp; c++) t[r][c] = f22 ? 0.0f : acc[r][c];
      const int np = npairs ? npairs[r0 / ROWS] : SAGE_BK / 2;
      const int end = (st + 1) * pairs < np ? (st + 1) * pairs : np;
      for (int kk = st * pairs; kk < end; kk++) {
        for (int64_t c = 0; c < dp; c++) v0[c] = bf16f(v[(kk * dp + c) * 2]), v1[c] = bf16f(v[(kk * dp + c) * 2 + 1]);
        for (int64_t r = 0; r < nr; r++) {
          const float p0 = bf16f(p[(r0 + r) * SAGE_BK + 2 * kk]), p1 = bf16f(p[(r0 + r) * SAGE_BK + 2 * kk + 1]);
          for (int64_t c = 0; c < dp; c++) t[r][c] = (t[r][c] + p1 * v1[c]) + p0 * v0[c];
        }
      }
      for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < dp; c++) acc[r][c] = f22 ? sage_trunc22(acc[r][c] + t[r][c]) : t[r][c];
    }
    for (int64_t r = 0; r < nr; r++)
      for (int64_t c = 0; c < dp; c++) {
        float *dst = &o[(r0 + r) * dp + c];
        *dst = single ? acc[r][c] : fmaf(*dst, alpha[r0 + r], acc[r][c]);
      }
  }
}

void sage_pv_f16_ref(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o, const float *alpha) {
  float acc[ROWS][MAXDP], vf[MAXDP];
  for (int64_t r0 = 0; r0 < rows; r0 += ROWS) {
    const int64_t nr = rows - r0 < ROWS ? rows - r0 : ROWS;
    for (int64_t r = 0; r < nr; r++)
      for (int64_t c = 0; c < dp; c++) acc[r][c] = 0.0f;
    for (int k = 0; k < SAGE_BK; k++) {
      for (int64_t c = 0; c < dp; c++) vf[c] = sage_f16_to_f32(v[k * dp + c]);
      for (int64_t r = 0; r < nr; r++) {
        const float pk = sage_f16_to_f32(p[(r0 + r) * SAGE_BK + k]);
        for (int64_t c = 0; c < dp; c++) acc[r][c] = sage_f16_fma(acc[r][c], pk, vf[c]);
      }
    }
    for (int64_t r = 0; r < nr; r++)
      for (int64_t c = 0; c < dp; c++) o[(r0 + r) * dp + c] = fmaf(o[(r0 + r) * dp + c], alpha[r0 + r], acc[r][c]);
  }
}

void sage_pv_u8_ref(const uint8_t *p, const int8_t *v, int64_t rows, int64_t dp, float *o, const float *alpha) {
  int32_t acc[ROWS][MAXDP];
  for (int64_t r0 = 0; r0 < rows; r0 += ROWS) {
    const int64_t nr = rows - r0 < ROWS ? rows - r0 : ROWS;
    for (int64_t r = 0; r < nr; r++)
      for (int64_t c = 0; c < dp; c++) acc[r][c] = 0;
    for (int k = 0; k < SAGE_BK; k++) {
      const int8_t *vk = v + (k / 4) * dp * 4 + k % 4;
      for (int64_t r = 0; r < nr; r++) {
        const int32_t pk = p[(r0 + r) * SAGE_BK + k];
        for (int64_t c = 0; c < dp; c++) acc[r][c] += pk * (int32_t)vk[4 * c];
      }
    }
    for (int64_t r = 0; r < nr; r++)
      for (int64_t c = 0; c < dp; c++) o[(r0 + r) * dp + c] = fmaf(o[(r0 + r) * dp + c], alpha[r0 + r], (float)acc[r][c]);
  }
}
