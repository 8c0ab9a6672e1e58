/* The portable twin of the flash_f32 tile kernel: same key blocks, same
 * online-softmax update and the same accumulation order per output element
 * as the AVX-512 kernel, written as plain loops. Compiled twice: as is (the
 * scalar reference and the SPARQ_SIMD=OFF build) and for AVX2, where the
 * compiler vectorizes the axpy loops. ISO C forbids FMA contraction here, so
 * the two builds give bit-identical results. */
#include <string.h>

#include "kernels/attn_flash.h"

static inline __attribute__((always_inline)) void run_body(const flash_item *it) {
  const int64_t dp = it->dp;
  for (int64_t r = 0; r < it->padded; r++)
    for (int64_t c = 0; c < dp; c++) it->q[r * dp + c] = r < it->rows ? it->qsrc[r * it->ldq + c] * it->qscale : 0.0f;
  int64_t most = 0;
  for (int64_t r = 0; r < it->padded; r++)
    if (it->visible[r] > most) most = it->visible[r];
  float s[FLASH_BK], pr[FLASH_BK];
  for (int64_t key0 = 0; key0 < most; key0 += FLASH_BK) {
    const bool first = key0 == 0;
    const float *kt = it->kt + key0 * dp, *v = it->v + key0 * it->ldv;
    for (int64_t r = 0; r < it->padded; r++) {
      const int64_t vis = it->visible[r];
      if (key0 >= vis) continue;
      if (r % FLASH_RG == 0) flash_prefetch_step(it->pf);
      const float *q = it->q + r * dp;
      for (int j = 0; j < FLASH_BK; j++) s[j] = 0.0f;
      for (int64_t c = 0; c < dp; c++) {
        const float qc = q[c];
        const float *kc = kt + c * FLASH_BK;
        for (int j = 0; j < FLASH_BK; j++) s[j] += qc * kc[j];
      }
      const int64_t lim = vis - key0 < FLASH_BK ? vis - key0 : FLASH_BK;
      for (int64_t j = lim; j < FLASH_BK; j++) s[j] = FLASH_MASK;
      float mb = s[0];
      for (int j = 1; j < FLASH_BK; j++) mb = s[j] > mb ? s[j] : mb;
      const float m_old = first ? FLASH_MASK : it->m[r], m_new = mb > m_old ? mb : m_old;
      const float alpha = flash_exp2(m_old - m_new);
      for (int j = 0; j < FLASH_BK; j++) pr[j] = flash_exp2(s[j] - m_new);
      float *l = it->l + r * 16;
      /* the first key block starts from l = 0 and O = 0 */
      for (int i = 0; i < 16; i++) {
        const float sum = (pr[i] + pr[i + 16]) + (pr[i + 32] + pr[i + 48]);
        l[i] = first ? sum : l[i] * alpha + sum;
      }
      it->m[r] = m_new;
      float *o = it->o + r * dp;
      if (first)
        for (int64_t c = 0; c < dp; c++) o[c] = 0.0f;
      else
        for (int64_t c = 0; c < dp; c++) o[c] *= alpha;
      for (int64_t j = 0; j < lim; j++) {
        const float pj = pr[j];
        const float *vj = v + j * it->ldv;
        for (int64_t c = 0; c < dp; c++) o[c] += pj * vj[c];
      }
    }
  }
  for (int64_t r = 0; r < it->rows; r++) {
    if (it->visible[r] == 0) continue;
    const float l = flash_sum16(it->l + r * 16), inv = 1.0f / l;
    it->lsum[r] = l;
    for (int64_t c = 0; c < dp; c++) it->out[r * it->ldo + c] = it->o[r * dp + c] * inv;
  }
}

void flash_item_run_scalar(const flash_item *it) { run_body(it); }

#ifdef SPARQ_HAVE_X86_SIMD
__attribute__((target("avx2,fma"))) void flash_item_run_avx2(const flash_item *it) { run_body(it); }
#endif
