/* The spec's §8 input distributions and accuracy metrics for attention. */
#include <math.h>
#include <string.h>

#include "sparq/attention.h"
#include "sparq/base.h"

/* Element (b, h, n, c) of a tensor in either layout. */
static size_t at(sparq_attn_layout layout, int64_t heads, int64_t len, int64_t d, int64_t b, int64_t h,
                 int64_t n, int64_t c) {
  if (layout == SPARQ_ATTN_HND) return (size_t)(((b * heads + h) * len + n) * d + c);
  return (size_t)(((b * len + n) * heads + h) * d + c);
}

/* One draw stream per (tensor, batch, head), so the fill order and the
 * thread count never change the numbers. */
enum { STREAM_Q = 1, STREAM_K = 2, STREAM_V = 3, STREAM_BIAS = 4 };

static uint64_t stream_id(int which, int64_t b, int64_t h) {
  return ((uint64_t)which << 56) ^ ((uint64_t)b << 24) ^ (uint64_t)h;
}

static void fill(float *x, sparq_attn_layout layout, int64_t heads, int64_t len, int64_t d, int64_t b,
                 int64_t h, uint64_t seed, int which, bool heavy_tail) {
  sparq_rng rng = sparq_rng_make(seed, stream_id(which, b, h));
  for (int64_t n = 0; n < len; n++)
    for (int64_t c = 0; c < d; c++) {
      float z = sparq_rng_normal(&rng);
      if (heavy_tail) z /= 0.3f + sparq_rng_uniform(&rng);
      x[at(layout, heads, len, d, b, h, n, c)] = z;
    }
}

/* Adds amplitude * bias[c] (bias ~ N(0,1) per channel of this head) to every token. */
static void add_channel_bias(float *x, sparq_attn_layout layout, int64_t heads, int64_t len, int64_t d,
                             int64_t b, int64_t h, uint64_t seed, int which, float amplitude) {
  sparq_rng rng = sparq_rng_make(seed, stream_id(STREAM_BIAS, b, h) ^ ((uint64_t)which << 48));
  for (int64_t c = 0; c < d; c++) {
    float bias = amplitude * sparq_rng_normal(&rng);
    for (int64_t n = 0; n < len; n++) x[at(layout, heads, len, d, b, h, n, c)] += bias;
  }
}

static void scale_all(float *x, size_t n, float s) {
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

sparq_status sparq_attn_make_case(int case_id, const sparq_attn_shape *s, sparq_attn_layout layout,
                                  uint64_t seed, float *q, float *k, float *v) {
  if (case_id < 0 || case_id > 5)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_attn_make_case: case D%d does not exist (D0..D5)", case_id);
  if (!s || !q || !k || !v) return sparq_fail(SPARQ_ERR_ARG, "sparq_attn_make_case: NULL argument");
  if (s->batch < 1 || s->q_heads < 1 || s->kv_heads < 1 || s->q_len < 1 || s->kv_len < 1 || s->head_dim < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_attn_make_case: every size must be >= 1");
  const int64_t B = s->batch, Hq = s->q_heads, Hk = s->kv_heads, Nq = s->q_len, Nk = s->kv_len, d = s->head_dim;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < Hq; h++) fill(q, layout, Hq, Nq, d, b, h, seed, STREAM_Q, case_id == 5);
    for (int64_t h = 0; h < Hk; h++) {
      fill(k, layout, Hk, Nk, d, b, h, seed, STREAM_K, false);
      fill(v, layout, Hk, Nk, d, b, h, seed, STREAM_V, false);
    }
  }
  if (case_id == 4) {
    scale_all(q, (size_t)(B * Hq * Nq * d), 3.0f);
    scale_all(k, (size_t)(B * Hk * Nk * d), 3.0f);
  }
  for (int64_t b = 0; b < B; b++) {
    if (case_id >= 1)
      for (int64_t h = 0; h < Hk; h++) add_channel_bias(k, layout, Hk, Nk, d, b, h, seed, STREAM_K, 8.0f);
    if (case_id == 2 || case_id == 3)
      for (int64_t h = 0; h < Hq; h++) add_channel_bias(q, layout, Hq, Nq, d, b, h, seed, STREAM_Q, 4.0f);
    if (case_id == 3)
      for (int64_t h = 0; h < Hk; h++) add_channel_bias(v, layout, Hk, Nk, d, b, h, seed, STREAM_V, 6.0f);
  }
  return SPARQ_OK;
}

void sparq_attn_compare(const float *ref, const float *test, size_t n, sparq_attn_error *out) {
  double dot = 0, rr = 0, tt = 0, l1 = 0, ref_l1 = 0, sq = 0, max_abs = 0;
  int64_t nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    double r = ref[i], t = test[i];
    if (!isfinite(t)) {
      nonfinite++;
      continue;
    }
    double e = fabs(r - t);
    dot += r * t, rr += r * r, tt += t * t;
    l1 += e, ref_l1 += fabs(r), sq += e * e;
    if (e > max_abs) max_abs = e;
  }
  memset(out, 0, sizeof *out);
  out->cos_sim = rr > 0 && tt > 0 ? dot / (sqrt(rr) * sqrt(tt)) : (rr == tt ? 1.0 : 0.0);
  out->rel_l1 = ref_l1 > 0 ? l1 / ref_l1 : l1;
  out->rmse = n ? sqrt(sq / (double)n) : 0;
  out->max_abs = max_abs;
  out->nonfinite = nonfinite;
  /* a non-finite output poisons the figures, so it cannot pass a gate unnoticed */
  if (nonfinite) out->cos_sim = NAN, out->rel_l1 = INFINITY, out->rmse = INFINITY, out->max_abs = INFINITY;
}
