/* The FP8 AdamW's per-tensor diagnostics (spec coat-fp8.md section 7):
 * histograms of k, the share of groups with k < 1, the share of non-zero
 * values that quantised to 0, and in shadow mode the relative errors of the
 * dequantised moments and of the update direction against the FP32 shadow.
 * Serial in a fixed order, so the figures do not depend on threads. */
#include <math.h>

#include "sparq/coat.h"
#include "sparq/train.h"
#include "train/adamw_internal.h"

#define G SPARQ_FP8_GROUP

static void k_histogram(const float *k, size_t n, uint32_t hist[SPARQ_FP8_K_BINS], double *frac_lt1) {
  size_t lt1 = 0;
  for (int b = 0; b < SPARQ_FP8_K_BINS; b++) hist[b] = 0;
  for (size_t i = 0; i < n; i++) {
    const double q = (double)k[i] / SPARQ_FP8_K_BIN_WIDTH;
    int b = q >= 0 && q < SPARQ_FP8_K_BINS - 1 ? (int)q : SPARQ_FP8_K_BINS - 1;
    hist[b]++;
    lt1 += k[i] < 1.0f;
  }
  *frac_lt1 = n ? (double)lt1 / (double)n : 0.0;
}

static double ratio(double num, double den) {
  if (den > 0) return num / den;
  return num > 0 ? INFINITY : 0.0;
}

sparq_status sparq_adamw_fp8_tensor_stats(const sparq_adamw_fp8_state *st, const sparq_adamw_config *cfg, size_t t,
                                          sparq_adamw_fp8_stats *out) {
  if (!st || !st->tensors || !cfg || !out || t >= st->ntensors)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_fp8_tensor_stats: NULL argument or tensor %zu out of range", t);
  const sparq_adamw_fp8_tensor *q = &st->tensors[t];
  if (st->cfg.identity) {
    /* no codes, hence no k: every group counts as k = 1 */
    for (int b = 0; b < SPARQ_FP8_K_BINS; b++) out->k_hist_m[b] = out->k_hist_v[b] = 0;
    out->k_hist_m[4] = out->k_hist_v[4] = (uint32_t)q->ngroups;
    out->frac_k_lt1_m = out->frac_k_lt1_v = 0.0;
  } else {
    k_histogram(st->m.k + q->group_offset, q->ngroups, out->k_hist_m, &out->frac_k_lt1_m);
    k_histogram(st->v.k + q->group_offset, q->ngroups, out->k_hist_v, &out->frac_k_lt1_v);
  }
  out->zero_frac_m = q->m_nonzero ? (double)q->m_zeroed / (double)q->m_nonzero : 0.0;
  out->zero_frac_v = q->v_nonzero ? (double)q->v_zeroed / (double)q->v_nonzero : 0.0;
  out->relmse_m = out->relmse_v = out->relmse_update = NAN;
  if (!st->shadow) return SPARQ_OK;
  const adamw_coef c = adamw_coef_make(cfg, 0.0f, st->step > 0 ? st->step : 1);
  const float *sm = st->shadow->exp_avg + q->offset, *sv = st->shadow->exp_avg_sq + q->offset;
  double em = 0, nm = 0, ev = 0, nv = 0, eu = 0, nu = 0;
  sparq_adamw_fp8_state one = *st; /* dequantise group by group through the public path */
  for (size_t j = 0; j < q->ngroups; j++) {
    const size_t start = j * G, n = q->numel - start < G ? q->numel - start : G;
    float m[G], v[G];
    sparq_adamw_fp8_tensor sub = *q;
    sub.numel = n, sub.ngroups = 1, sub.code_offset = q->code_offset + start, sub.group_offset = q->group_offset + j;
    one.tensors = &sub, one.ntensors = 1;
    sparq_status s = sparq_adamw_fp8_dequantize(&one, 0, m, v);
    if (s) return s;
    for (size_t i = 0; i < n; i++) {
      const double a = m[i], b = sm[start + i], x = v[i], y = sv[start + i];
      em += (a - b) * (a - b), nm += b * b;
      ev += (x - y) * (x - y), nv += y * y;
      const double ua = a / (sqrt(x) / c.bc2_sqrt + c.eps), ub = b / (sqrt(y) / c.bc2_sqrt + c.eps);
      eu += (ua - ub) * (ua - ub), nu += ub * ub;
    }
  }
  out->relmse_m = ratio(em, nm);
  out->relmse_v = ratio(ev, nv);
  out->relmse_update = ratio(eu, nu);
  return SPARQ_OK;
}
