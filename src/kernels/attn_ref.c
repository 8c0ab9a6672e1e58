/* ref_f64: naive attention in double precision, the oracle every other
 * variant is measured against, and its backward. One query row at a time,
 * straight from the definition; no tiling, no online softmax. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/attn_fp32.h"
#include "sparq/base.h"

/* Scores of query row q against the visible keys, scaled, in double. */
static void row_scores(const float *q, const float *k, int64_t visible, int64_t d, int64_t dp, double scale,
                       double *s) {
  for (int64_t j = 0; j < visible; j++) {
    const float *kj = k + j * dp;
    double acc = 0;
    for (int64_t c = 0; c < d; c++) acc += (double)q[c] * (double)kj[c];
    s[j] = scale * acc;
  }
}

/* Turns scores into probabilities in place; returns the log of the
 * normaliser (the natural-log LSE). visible >= 1. */
static double row_softmax(double *s, int64_t visible) {
  double m = s[0];
  for (int64_t j = 1; j < visible; j++)
    if (s[j] > m || isnan(s[j])) m = s[j];
  double l = 0;
  for (int64_t j = 0; j < visible; j++) l += (s[j] = exp(s[j] - m));
  for (int64_t j = 0; j < visible; j++) s[j] /= l;
  return m + log(l);
}

sparq_status attn_forward_ref_f64(const attn_problem *p) {
  const int64_t d = p->head_dim, dp = p->dp, Nq = p->q_len;
  const int threads = omp_get_max_threads();
  /* per thread: scores [kv_len] and one output row [dp] */
  const int64_t per = p->kv_len + dp;
  double *scratch = sparq_alloc((size_t)(threads * per) * sizeof(double), "ref_f64 scratch");
  if (!scratch) return SPARQ_ERR_NOMEM;
  const int64_t rows = p->batch * p->q_heads * Nq;
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
    double *s = scratch + omp_get_thread_num() * per, *acc = s + p->kv_len;
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < rows; r++) {
      const int64_t i = r % Nq, h = (r / Nq) % p->q_heads, b = r / (Nq * p->q_heads), hk = attn_kv_head(p, h);
      const float *q = attn_q_at(p, b, h) + i * dp, *k = attn_k_at(p, b, hk), *v = attn_v_at(p, b, hk);
      float *o = attn_o_at(p, b, h) + i * dp;
      const int64_t visible = attn_visible_keys(p, i);
      if (visible == 0) {
        memset(o, 0, (size_t)dp * sizeof(float));
        if (p->lse) p->lse[r] = -INFINITY;
        continue;
      }
      row_scores(q, k, visible, d, dp, (double)p->scale, s);
      double lse = row_softmax(s, visible);
      memset(acc, 0, (size_t)d * sizeof(double));
      for (int64_t j = 0; j < visible; j++) {
        const float *vj = v + j * dp;
        for (int64_t c = 0; c < d; c++) acc[c] += s[j] * (double)vj[c];
      }
      for (int64_t c = 0; c < d; c++) o[c] = (float)acc[c];
      if (p->lse) p->lse[r] = (float)lse;
    }
  }
  sparq_free(scratch);
  return SPARQ_OK;
}

/* Backward from the definition, for one (batch, kv head) and all query heads
 * of its group, so dK and dV accumulate in a fixed order with no sharing:
 *   P = softmax(scale QK^T + M), O = PV, D_i = dO_i . O_i,
 *   dV = P^T dO, dP = dO V^T, dS = P o (dP - D), dQ = scale dS K, dK = scale dS^T Q. */
sparq_status attn_backward_ref_f64(const attn_grad *g) {
  const attn_problem *p = &g->p;
  const int64_t d = p->head_dim, dp = p->dp, Nq = p->q_len, Nk = p->kv_len, group = p->q_heads / p->kv_heads;
  const int threads = omp_get_max_threads();
  /* per thread: P row [Nk], dP row [Nk], O row [d], dQ row [d], dK and dV [Nk][d] */
  const int64_t per = 2 * Nk + 2 * d + 2 * Nk * d;
  double *scratch = sparq_alloc((size_t)(threads * per) * sizeof(double), "ref_f64 backward scratch");
  if (!scratch) return SPARQ_ERR_NOMEM;
  const double scale = (double)p->scale;
  const int64_t items = p->batch * p->kv_heads;
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
    double *P = scratch + omp_get_thread_num() * per, *dP = P + Nk, *o = dP + Nk, *dq = o + d, *dk = dq + d,
           *dv = dk + Nk * d;
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
      const int64_t b = it / p->kv_heads, hk = it % p->kv_heads;
      const float *K = attn_k_at(p, b, hk), *V = attn_v_at(p, b, hk);
      memset(dk, 0, (size_t)(2 * Nk * d) * sizeof(double));
      for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        const float *Q = attn_q_at(p, b, h);
        const size_t base = (size_t)((b * p->q_heads + h) * Nq) * (size_t)dp;
        const float *dO = g->dout + base;
        float *dQ = g->dq + base;
        for (int64_t i = 0; i < Nq; i++) {
          const float *qi = Q + i * dp, *doi = dO + i * dp;
          const int64_t visible = attn_visible_keys(p, i);
          memset(dq, 0, (size_t)d * sizeof(double));
          if (visible > 0) {
            row_scores(qi, K, visible, d, dp, scale, P);
            row_softmax(P, visible);
            memset(o, 0, (size_t)d * sizeof(double));
            for (int64_t j = 0; j < visible; j++)
              for (int64_t c = 0; c < d; c++) o[c] += P[j] * (double)V[j * dp + c];
            double D = 0;
            for (int64_t c = 0; c < d; c++) D += (double)doi[c] * o[c];
            for (int64_t j = 0; j < visible; j++) {
              double acc = 0;
              for (int64_t c = 0; c < d; c++) acc += (double)doi[c] * (double)V[j * dp + c];
              dP[j] = P[j] * (acc - D); /* dS */
            }
            for (int64_t j = 0; j < visible; j++)
              for (int64_t c = 0; c < d; c++) {
                dq[c] += dP[j] * (double)K[j * dp + c];
                dk[j * d + c] += dP[j] * (double)qi[c];
                dv[j * d + c] += P[j] * (double)doi[c];
              }
          }
          for (int64_t c = 0; c < d; c++) dQ[i * dp + c] = (float)(scale * dq[c]);
        }
      }
      const size_t kbase = (size_t)((b * p->kv_heads + hk) * Nk) * (size_t)dp;
      for (int64_t j = 0; j < Nk; j++)
        for (int64_t c = 0; c < d; c++) {
          g->dk[kbase + (size_t)(j * dp + c)] = (float)(scale * dk[j * d + c]);
          g->dv[kbase + (size_t)(j * dp + c)] = (float)dv[j * d + c];
        }
    }
  }
  sparq_free(scratch);
  return SPARQ_OK;
}
