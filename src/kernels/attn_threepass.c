/* The three-pass FP32 baseline: what attention costs without fusion. Per
 * (batch, head, block of TP_BQ queries):
 *   S = scale log2(e) Q K^T     (sparq_sgemm, only the keys the block sees)
 *   P = 2^(S - rowmax), masked  (a separate pass over S)
 *   O = P V / rowsum            (sparq_sgemm)
 * S is one [TP_BQ, kv_len] tile per thread, so memory stays bounded for any
 * length. The blocks run in parallel and each GEMM runs on the thread that
 * owns the block (oneDNN does not nest inside an OpenMP region), so the
 * result does not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "kernels/attn_flash.h"
#include "kernels/attn_fp32.h"
#include "sparq/base.h"
#include "sparq/kernels.h"

enum { TP_BQ = 64 };

/* One row of S in place -> unnormalized P; returns the row max (log2 domain)
 * and stores the row sum. Compiled for the plain and AVX-512 targets so the
 * exp2 loop vectorizes where it can. */
static inline __attribute__((always_inline)) float softmax_row_body(float *s, int64_t n, int64_t visible,
                                                                    float *sum) {
  /* 16 lanes of partial max and sum: without them each reduction is one
   * serial dependency chain and the baseline would measure that, not the
   * cost of the extra passes over S */
  enum { L = 16 };
  for (int64_t j = visible; j < n; j++) s[j] = FLASH_MASK;
  float mx[L], sm[L];
  for (int l = 0; l < L; l++) mx[l] = FLASH_MASK, sm[l] = 0.0f;
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; l++) mx[l] = s[j + l] > mx[l] ? s[j + l] : mx[l];
  for (; j < n; j++) mx[0] = s[j] > mx[0] ? s[j] : mx[0];
  float m = mx[0];
  for (int l = 1; l < L; l++) m = mx[l] > m ? mx[l] : m;
  for (j = 0; j < n; j++) s[j] = flash_exp2(s[j] - m);
  for (j = 0; j + L <= n; j += L)
    for (int l = 0; l < L; l++) sm[l] += s[j + l];
  for (; j < n; j++) sm[0] += s[j];
  float total = 0.0f;
  for (int l = 0; l < L; l++) total += sm[l];
  *sum = total;
  return m;
}

static float softmax_row(float *s, int64_t n, int64_t visible, float *sum) {
  return softmax_row_body(s, n, visible, sum);
}
#ifdef SPARQ_HAVE_X86_SIMD
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static float softmax_row_avx512(float *s, int64_t n,
                                                                                             int64_t visible,
                                                                                             float *sum) {
  return softmax_row_body(s, n, visible, sum);
}
#endif

typedef float (*softmax_fn)(float *s, int64_t n, int64_t visible, float *sum);

static sparq_status run_block(const attn_problem *p, softmax_fn softmax, float *S, int64_t b, int64_t h,
                              int64_t q0) {
  const int64_t dp = p->dp, hk = attn_kv_head(p, h);
  const int64_t rows = p->q_len - q0 < TP_BQ ? p->q_len - q0 : TP_BQ;
  float *o = attn_o_at(p, b, h) + q0 * dp;
  float *lse = p->lse ? p->lse + (b * p->q_heads + h) * p->q_len + q0 : NULL;
  int64_t n = 0; /* keys any row of the block sees */
  for (int64_t r = 0; r < rows; r++) {
    int64_t vis = attn_visible_keys(p, q0 + r);
    n = vis > n ? vis : n;
  }
  if (n == 0) {
    memset(o, 0, (size_t)(rows * dp) * sizeof(float));
    for (int64_t r = 0; lse && r < rows; r++) lse[r] = -INFINITY;
    return SPARQ_OK;
  }
  sparq_status st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, rows, n, dp, p->scale * FLASH_LOG2E,
                                attn_q_at(p, b, h) + q0 * dp, dp, attn_k_at(p, b, hk), dp, 0.0f, S, n);
  if (st != SPARQ_OK) return st;
  float m[TP_BQ], l[TP_BQ];
  for (int64_t r = 0; r < rows; r++) {
    const int64_t vis = attn_visible_keys(p, q0 + r);
    /* a fully masked row still runs (its S row is all mask) and is zeroed below */
    m[r] = softmax(S + r * n, n, vis, &l[r]);
  }
  st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, rows, dp, n, 1.0f, S, n, attn_v_at(p, b, hk), dp, 0.0f, o, dp);
  if (st != SPARQ_OK) return st;
  for (int64_t r = 0; r < rows; r++) {
    float *orow = o + r * dp;
    if (attn_visible_keys(p, q0 + r) == 0) {
      memset(orow, 0, (size_t)dp * sizeof(float));
      if (lse) lse[r] = -INFINITY;
      continue;
    }
    for (int64_t c = 0; c < dp; c++) orow[c] /= l[r];
    if (lse) lse[r] = (float)((double)m[r] * (double)FLASH_LN2 + log((double)l[r]));
  }
  return SPARQ_OK;
}

sparq_status attn_forward_threepass(const attn_problem *p) {
  const int threads = omp_get_max_threads();
  const size_t per = (size_t)TP_BQ * (size_t)p->kv_len;
  float *scratch = sparq_alloc((size_t)threads * per * sizeof(float), "three-pass score tiles");
  if (!scratch) return SPARQ_ERR_NOMEM;
  softmax_fn softmax = softmax_row;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() == SPARQ_ISA_AVX512) softmax = softmax_row_avx512;
#endif
  const int64_t nqb = (p->q_len + TP_BQ - 1) / TP_BQ, items = p->batch * p->q_heads * nqb;
  sparq_status status = SPARQ_OK;
  char message[256] = "";
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
    float *S = scratch + (size_t)omp_get_thread_num() * per;
#pragma omp for schedule(dynamic, 1)
    for (int64_t x = 0; x < items; x++) {
      const int64_t qb = nqb - 1 - x % nqb, bh = x / nqb;
      sparq_status st = run_block(p, softmax, S, bh / p->q_heads, bh % p->q_heads, qb * TP_BQ);
      if (st != SPARQ_OK) {
        /* the message is thread-local: carry it to the calling thread */
#pragma omp critical(attn_threepass_status)
        if (status == SPARQ_OK) {
          status = st;
          snprintf(message, sizeof message, "%s", sparq_last_error());
        }
      }
    }
  }
  sparq_free(scratch);
  if (status != SPARQ_OK) return sparq_fail(status, "sparq_attention_threepass: %s", message);
  return SPARQ_OK;
}
