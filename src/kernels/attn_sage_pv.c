/* Scalar twins of the Sage PV kernels (spec §2.6, §5): one key block of
 * P-tilde times V-hat added into FP32 O. Each performs the arithmetic of its
 * SIMD kernel in the same order, so the pairs agree bit for bit:
 *   BF16: per output, key pairs as vdpbf16ps does them: acc + p1 v1, then + p0 v0,
 *         each product exact in FP32 (8 x 8 significant bits), each add rounded;
 *   FP16: per output, key by key, one FP16 rounding per step as vfmadd231ph;
 *   U8:   exact int32 sums.
 * The flush O = alpha O + R is one fused multiply-add. */
#include <math.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/num.h"

void sage_pv_bf16_ref(const uint16_t *p, const uint16_t *v, int keys, int64_t rows, int64_t dp, float *o,
                      const float *alpha, sage_pv_mode mode) {
  for (int64_t r = 0; r < rows; r++) {
    const uint16_t *pr = p + r * SAGE_BK;
    for (int64_t c = 0; c < dp; c++) {
      float acc = mode == SAGE_PV_ADD ? o[r * dp + c] : 0.0f;
      for (int kk = 0; kk < keys / 2; kk++) {
        const uint16_t *vp = v + (kk * dp + c) * 2;
        acc = acc + sparq_bf16_to_f32(pr[2 * kk + 1]) * sparq_bf16_to_f32(vp[1]);
        acc = acc + sparq_bf16_to_f32(pr[2 * kk]) * sparq_bf16_to_f32(vp[0]);
      }
      o[r * dp + c] = mode == SAGE_PV_FLUSH ? fmaf(o[r * dp + c], alpha[r], acc) : acc;
    }
  }
}

void sage_pv_f16_ref(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o, const float *alpha) {
  for (int64_t r = 0; r < rows; r++) {
    const uint16_t *pr = p + r * SAGE_BK;
    for (int64_t c = 0; c < dp; c++) {
      float acc = 0.0f;
      for (int k = 0; k < SAGE_BK; k++)
        acc = sage_f16_fma(acc, sparq_f16_to_f32(pr[k]), sparq_f16_to_f32(v[k * dp + c]));
      o[r * dp + c] = fmaf(o[r * dp + c], alpha[r], acc);
    }
  }
}

void sage_pv_u8_ref(const uint8_t *p, const int8_t *v, int64_t rows, int64_t dp, float *o, const float *alpha) {
  for (int64_t r = 0; r < rows; r++) {
    const uint8_t *pr = p + r * SAGE_BK;
    for (int64_t c = 0; c < dp; c++) {
      int32_t acc = 0;
      for (int k = 0; k < SAGE_BK; k++) acc += (int32_t)pr[k] * (int32_t)v[((k / 4) * dp + c) * 4 + k % 4];
      o[r * dp + c] = fmaf(o[r * dp + c], alpha[r], (float)acc);
    }
  }
}
