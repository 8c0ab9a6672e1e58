/* Portable twins of the backward's register tiles (see attn_flash.h), built
 * plain and for AVX2 like the forward's portable kernel; without FMA
 * contraction both builds give the same bits. */
#include "kernels/attn_flash.h"

static inline __attribute__((always_inline)) void abt_body(const float *a, int64_t lda, const float *bt,
                                                           int64_t dp, int R, int c0, float *c) {
  for (int r = 0; r < R; r++) {
    float s[64];
    for (int j = 16 * c0; j < 64; j++) s[j] = 0.0f;
    for (int64_t k = 0; k < dp; k++) {
      const float x = a[r * lda + k];
      const float *b = bt + k * 64;
      for (int j = 16 * c0; j < 64; j++) s[j] += x * b[j];
    }
    for (int j = 16 * c0; j < 64; j++) c[r * 64 + j] = s[j];
  }
}

static inline __attribute__((always_inline)) void pv_body(const float *p, int64_t prs, int64_t pcs, int64_t j0,
                                                          int64_t j1, const float *v, int64_t ldv, float *o,
                                                          int64_t ldo, int64_t dp, int R, bool init) {
  for (int r = 0; r < R; r++) {
    float *orow = o + r * ldo;
    if (init)
      for (int64_t c = 0; c < dp; c++) orow[c] = 0.0f;
    for (int64_t j = j0; j < j1; j++) {
      const float x = p[r * prs + j * pcs];
      const float *vj = v + j * ldv;
      for (int64_t c = 0; c < dp; c++) orow[c] += x * vj[c];
    }
  }
}

static inline __attribute__((always_inline)) void grad_body(const float *s, const float *dpt, const float *lse2,
                                                            const float *dvec, const int *lo, int hi, int R, int c0,
                                                            float *p, float *ds) {
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 16 * c0; j++) p[r * 64 + j] = ds[r * 64 + j] = 0.0f;
    for (int j = 16 * c0; j < 64; j++) {
      const int at = r * 64 + j;
      const bool sees = j >= lo[r] && j < hi;
      const float pr = sees ? flash_exp2(s[at] - lse2[j]) : 0.0f;
      p[at] = pr;
      ds[at] = sees ? pr * (dpt[at] - dvec[j]) : 0.0f; /* exactly 0, even where dP is NaN */
    }
  }
}

static inline __attribute__((always_inline)) void dots_body(const float *a, const float *b, int64_t lda, int64_t n,
                                                            int64_t dp, float *out) {
  for (int64_t i = 0; i < n; i++) {
    const float *x = a + i * lda, *y = b + i * lda;
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t c = 0; c < dp; c += 8)
      for (int l = 0; l < 8; l++) acc[l] += (double)x[c + l] * (double)y[c + l];
    out[i] = (float)(((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])));
  }
}

static void abt_scalar(const float *a, int64_t lda, const float *bt, int64_t dp, int R, int c0, float *c) {
  abt_body(a, lda, bt, dp, R, c0, c);
}
static void pv_scalar(const float *p, int64_t prs, int64_t pcs, int64_t j0, int64_t j1, const float *v, int64_t ldv,
                      float *o, int64_t ldo, int64_t dp, int R, bool init) {
  pv_body(p, prs, pcs, j0, j1, v, ldv, o, ldo, dp, R, init);
}
static void grad_scalar(const float *s, const float *dpt, const float *lse2, const float *dvec, const int *lo, int hi,
                        int R, int c0, float *p, float *ds) {
  grad_body(s, dpt, lse2, dvec, lo, hi, R, c0, p, ds);
}
static void dots_scalar(const float *a, const float *b, int64_t lda, int64_t n, int64_t dp, float *out) {
  dots_body(a, b, lda, n, dp, out);
}
const flash_tiles flash_tiles_scalar = {abt_scalar, pv_scalar, grad_scalar, dots_scalar};

#ifdef SPARQ_HAVE_X86_SIMD
__attribute__((target("avx2,fma"))) static void abt_avx2(const float *a, int64_t lda, const float *bt, int64_t dp,
                                                         int R, int c0, float *c) {
  abt_body(a, lda, bt, dp, R, c0, c);
}
__attribute__((target("avx2,fma"))) static void pv_avx2(const float *p, int64_t prs, int64_t pcs, int64_t j0,
                                                        int64_t j1, const float *v, int64_t ldv, float *o,
                                                        int64_t ldo, int64_t dp, int R, bool init) {
  pv_body(p, prs, pcs, j0, j1, v, ldv, o, ldo, dp, R, init);
}
__attribute__((target("avx2,fma"))) static void grad_avx2(const float *s, const float *dpt, const float *lse2,
                                                          const float *dvec, const int *lo, int hi, int R, int c0,
                                                          float *p, float *ds) {
  grad_body(s, dpt, lse2, dvec, lo, hi, R, c0, p, ds);
}
__attribute__((target("avx2,fma"))) static void dots_avx2(const float *a, const float *b, int64_t lda, int64_t n,
                                                          int64_t dp, float *out) {
  dots_body(a, b, lda, n, dp, out);
}
const flash_tiles flash_tiles_avx2 = {abt_avx2, pv_avx2, grad_avx2, dots_avx2};
#endif
