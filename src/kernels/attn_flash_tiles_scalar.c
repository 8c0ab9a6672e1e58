/* Portable twins of the backward's register tiles (see attn_flash.h), built
 * plain and for AVX2 like the forward's portable kernel; without FMA
 * contraction both builds give the same bits. */
#include "kernels/attn_flash.h"

static inline __attribute__((always_inline)) void abt_body(const float *a, int64_t lda, const float *bt,
                                                           int64_t dp, float *c) {
  for (int r = 0; r < FLASH_RG; r++) {
    float s[FLASH_BK];
    for (int j = 0; j < FLASH_BK; j++) s[j] = 0.0f;
    for (int64_t k = 0; k < dp; k++) {
      const float x = a[r * lda + k];
      const float *b = bt + k * FLASH_BK;
      for (int j = 0; j < FLASH_BK; j++) s[j] += x * b[j];
    }
    for (int j = 0; j < FLASH_BK; j++) c[r * FLASH_BK + j] = s[j];
  }
}

static inline __attribute__((always_inline)) void pv_body(const float *p, int64_t ldp, const float *v, int64_t ldv,
                                                          int64_t nk, float *o, int64_t ldo, int64_t dp) {
  for (int r = 0; r < FLASH_RG; r++) {
    float *orow = o + r * ldo;
    for (int64_t j = 0; j < nk; j++) {
      const float x = p[r * ldp + j];
      const float *vj = v + j * ldv;
      for (int64_t c = 0; c < dp; c++) orow[c] += x * vj[c];
    }
  }
}

static inline __attribute__((always_inline)) void grad_body(float *s, const float *dp, float *p, const float *lse2,
                                                            const float *dvec, const int *lim) {
  for (int r = 0; r < FLASH_RG; r++)
    for (int j = 0; j < FLASH_BK; j++) {
      const int at = r * FLASH_BK + j;
      const bool sees = j < lim[r];
      const float pr = sees ? flash_exp2(s[at] - lse2[r]) : 0.0f;
      p[at] = pr;
      s[at] = sees ? pr * (dp[at] - dvec[r]) : 0.0f; /* exactly 0, even where dP is NaN */
    }
}

static void abt_scalar(const float *a, int64_t lda, const float *bt, int64_t dp, float *c) {
  abt_body(a, lda, bt, dp, c);
}
static void pv_scalar(const float *p, int64_t ldp, const float *v, int64_t ldv, int64_t nk, float *o, int64_t ldo,
                      int64_t dp) {
  pv_body(p, ldp, v, ldv, nk, o, ldo, dp);
}
static void grad_scalar(float *s, const float *dp, float *p, const float *lse2, const float *dvec, const int *lim) {
  grad_body(s, dp, p, lse2, dvec, lim);
}
const flash_tiles flash_tiles_scalar = {abt_scalar, pv_scalar, grad_scalar};

#ifdef SPARQ_HAVE_X86_SIMD
__attribute__((target("avx2,fma"))) static void abt_avx2(const float *a, int64_t lda, const float *bt, int64_t dp,
                                                         float *c) {
  abt_body(a, lda, bt, dp, c);
}
__attribute__((target("avx2,fma"))) static void pv_avx2(const float *p, int64_t ldp, const float *v, int64_t ldv,
                                                        int64_t nk, float *o, int64_t ldo, int64_t dp) {
  pv_body(p, ldp, v, ldv, nk, o, ldo, dp);
}
__attribute__((target("avx2,fma"))) static void grad_avx2(float *s, const float *dp, float *p, const float *lse2,
                                                          const float *dvec, const int *lim) {
  grad_body(s, dp, p, lse2, dvec, lim);
}
const flash_tiles flash_tiles_avx2 = {abt_avx2, pv_avx2, grad_avx2};
#endif
