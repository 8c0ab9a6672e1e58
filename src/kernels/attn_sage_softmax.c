/* Scalar twins of the Sage QK + softmax tile, and the scalar pieces every
 * path shares (exp2, the per-row state update, the FP16 FMA emulation).
 *
 * The SIMD kernel (attn_sage_qk_avx512.c) performs the same FP32 operations
 * in the same order, so the two agree bit for bit: dequantization is
 * fma(float(S), dQ_i dK_j, dS_j) (or the product), the block max is exact,
 * P-tilde comes from sage_exp2's operation sequence, and the row sum uses
 * the fixed lane tree of sage_sum64. Explicit fmaf() everywhere keeps the
 * compiler's contraction choices out of the results. */
#include <math.h>
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "num/float_bits.h"
#include "sparq/num.h"

/* sum_c Q-hat+128 x K-hat of the packed block kp for all rows and keys */
static void dot_block(const sage_qk_tile *t, const int8_t *kp, int32_t *acc) {
  const int64_t dp = t->dp;
  int8_t k[SAGE_BK * 256]; /* the block unpacked row-major, so the dot loops vectorize */
  for (int j = 0; j < SAGE_BK; j++)
    for (int64_t c = 0; c < dp; c++) k[j * dp + c] = sage_packed_k_at(kp, dp, j, c);
  for (int r = 0; r < SAGE_QK_ROWS; r++)
    for (int j = 0; j < SAGE_BK; j++) {
      int32_t a = 0;
      for (int64_t c = 0; c < dp; c++) a += (int32_t)t->q[r * dp + c] * (int32_t)k[j * dp + c];
      acc[r * SAGE_BK + j] = a;
    }
}

void sage_qk_scores_ref(const sage_qk_tile *t, int32_t *s) {
  dot_block(t, t->k, s);
  if (t->k_lo) { /* 128 S-hat + S-lo (no overflow for dp <= 256: below 1.1e9) */
    int32_t lo[SAGE_QK_ROWS * SAGE_BK];
    dot_block(t, t->k_lo, lo);
    for (int i = 0; i < SAGE_QK_ROWS * SAGE_BK; i++) s[i] = s[i] * 128 + lo[i];
  }
  for (int r = 0; r < SAGE_QK_ROWS; r++)
    for (int j = 0; j < SAGE_BK; j++) s[r * SAGE_BK + j] -= t->k_corr[j];
}

void sage_softmax_row_ref(const sage_qk_tile *t, int r, const int32_t *s_row) {
  float s[SAGE_BK], pt[SAGE_BK];
  const float dq = t->q_scale[r];
  const float *ds = t->ds[r];
  const int from = t->masked ? sage_mask_from(t, r) : SAGE_BK;
  float mx = -INFINITY;
  /* With dS the score is fma(x, dQ dK, dS). Without it the row scale dQ
   * waits: s = x dK, max over s, and the exponent fma(s, dQ, -b) (dQ > 0, so
   * max(s) dQ is the max of the scaled scores). */
  for (int j = 0; j < SAGE_BK; j++) {
    float x = (float)s_row[j], v = ds ? fmaf(x, dq * t->k_scale[j], ds[j]) : x * t->k_scale[j];
    if (j >= from) v = SAGE_MASK;
    s[j] = v;
    mx = v > mx ? v : mx;
  }
  const float bias = sage_row_begin(t, r, ds ? mx : mx * dq);
  for (int j = 0; j < SAGE_BK; j++) pt[j] = j >= from ? 0.0f : sage_exp2(ds ? s[j] - bias : fmaf(s[j], dq, -bias));
  sage_row_end(t, r, sage_sum64(pt));
  switch (t->fmt) {
    case SAGE_P_F32: memcpy((float *)t->p + r * SAGE_BK, pt, sizeof pt); break;
    case SAGE_P_BF16:
      for (int j = 0; j < SAGE_BK; j++) ((uint16_t *)t->p)[r * SAGE_BK + j] = sparq_bf16_from_f32(pt[j]);
      break;
    case SAGE_P_F16:
      for (int j = 0; j < SAGE_BK; j++) ((uint16_t *)t->p)[r * SAGE_BK + j] = sparq_f16_from_f32(pt[j]);
      break;
    case SAGE_P_U8:
      for (int j = 0; j < SAGE_BK; j++) ((uint8_t *)t->p)[r * SAGE_BK + j] = sage_p_u8(pt[j], t->u8_scale);
      break;
    case SAGE_P_E4M3_BF16:
      for (int j = 0; j < SAGE_BK; j++)
        ((uint16_t *)t->p)[r * SAGE_BK + j] = (uint16_t)(f32_bits(sage_e4m3_round(pt[j])) >> 16);
      break;
    case SAGE_P_E4M3_F16:
      for (int j = 0; j < SAGE_BK; j++)
        ((uint16_t *)t->p)[r * SAGE_BK + j] = sage_exact_f16_bits(sage_e4m3_round(pt[j]));
      break;
  }
}

void sage_qk_tile_ref(const sage_qk_tile *t) {
  int32_t s[SAGE_QK_ROWS * SAGE_BK];
  sage_qk_scores_ref(t, s);
  for (int r = 0; r < SAGE_QK_ROWS; r++) sage_softmax_row_ref(t, r, s + r * SAGE_BK);
}
