/* The spec's data model: a signal patch y * mu and an s-sparse Gaussian noise
 * patch per sample, stored sparsely so a step costs O(n * m * s), not
 * O(n * m * d). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "study/signgd_internal.h"

/* The signal patch as a one-entry sparse vector. */
static const int32_t signal_idx = 0;
static const double signal_val = 1.0;

sg_patch sg_patch_get(const sparq_signgd_data *data, int64_t i, int p) {
  if (p == (int)data->signal_pos[i])
    return (sg_patch){1, &signal_idx, &signal_val, (double)data->y[i] * data->mu_norm};
  return (sg_patch){data->s, data->noise_idx + i * data->s, data->noise_val + i * data->s, 1.0};
}

void sparq_signgd_data_free(sparq_signgd_data *data) {
  if (!data) return;
  sparq_free(data->y);
  sparq_free(data->signal_pos);
  sparq_free(data->noise_idx);
  sparq_free(data->noise_val);
  memset(data, 0, sizeof *data);
}

sparq_status sparq_signgd_data_alloc(sparq_signgd_data *out, int64_t n, int64_t d, int64_t s, double mu_norm) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_alloc: out is NULL");
  memset(out, 0, sizeof *out);
  if (n < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_alloc: n %lld must be >= 1", (long long)n);
  if (d < 2 || d > INT32_MAX)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_alloc: d %lld must be in 2..2^31-1", (long long)d);
  if (s < 1 || s > d - 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_alloc: s %lld must be in 1..d-1 (d = %lld)", (long long)s,
                      (long long)d);
  if (!(mu_norm >= 0) || !isfinite(mu_norm))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_alloc: ||mu|| %g must be finite and >= 0", mu_norm);
  size_t ns;
  if (!sparq_size_mul((size_t)n, (size_t)s, &ns) || ns > SIZE_MAX / sizeof(double))
    return sparq_fail(SPARQ_ERR_NOMEM, "sparq_signgd_data_alloc: %lld x %lld noise entries overflow", (long long)n,
                      (long long)s);
  out->n = n, out->d = d, out->s = s, out->mu_norm = mu_norm;
  out->y = sparq_calloc((size_t)n, 1, "signgd labels");
  out->signal_pos = sparq_calloc((size_t)n, 1, "signgd signal positions");
  out->noise_idx = sparq_calloc(ns, sizeof(int32_t), "signgd noise coordinates");
  out->noise_val = sparq_calloc(ns, sizeof(double), "signgd noise values");
  if (!out->y || !out->signal_pos || !out->noise_idx || !out->noise_val) {
    sparq_signgd_data_free(out);
    return SPARQ_ERR_NOMEM;
  }
  return SPARQ_OK;
}

static int compare_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Floyd's algorithm: a uniform s-subset of 1..d-1 with exactly s draws
 * (a rejection loop would make the number of draws, and so every later
 * draw, depend on collisions). */
static void draw_support(sparq_rng *rng, int64_t d, int64_t s, int32_t *idx) {
  const int64_t range = d - 1; /* coordinates 1..d-1 */
  int64_t count = 0;
  for (int64_t j = range - s; j < range; j++) {
    int32_t t = (int32_t)(1 + sparq_rng_below(rng, (uint64_t)j + 1));
    int32_t pick = t;
    for (int64_t c = 0; c < count; c++)
      if (idx[c] == t) {
        pick = (int32_t)(1 + j);
        break;
      }
    idx[count++] = pick;
  }
  qsort(idx, (size_t)s, sizeof *idx, compare_i32);
}

sparq_status sparq_signgd_data_sample(sparq_signgd_data *out, int64_t n, int64_t d, int64_t s, double mu_norm,
                                      double sigma_p, bool random_position, sparq_rng *rng) {
  if (!rng) {
    if (out) memset(out, 0, sizeof *out);
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_sample: rng is NULL");
  }
  if (!(sigma_p > 0) || !isfinite(sigma_p)) {
    if (out) memset(out, 0, sizeof *out);
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_sample: sigma_p %g must be finite and > 0", sigma_p);
  }
  sparq_status st = sparq_signgd_data_alloc(out, n, d, s, mu_norm);
  if (st != SPARQ_OK) return st;
  for (int64_t i = 0; i < n; i++) {
    out->y[i] = (sparq_rng_u32(rng) & 1) ? 1 : -1;
    int32_t *idx = out->noise_idx + i * s;
    double *val = out->noise_val + i * s;
    draw_support(rng, d, s, idx);
    for (int64_t j = 0; j < s; j++) {
      double x;
      do x = (double)sparq_rng_normal(rng);
      while (x == 0);
      val[j] = sigma_p * x;
    }
  }
  /* positions last, so the variant keeps every label and noise draw */
  if (random_position)
    for (int64_t i = 0; i < n; i++) out->signal_pos[i] = (uint8_t)(sparq_rng_u32(rng) & 1);
  return SPARQ_OK;
}

sparq_status sparq_signgd_data_check(const sparq_signgd_data *data) {
  if (!data || !data->y || !data->signal_pos || !data->noise_idx || !data->noise_val)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data: data or one of its arrays is NULL");
  if (data->n < 1 || data->d < 2 || data->d > INT32_MAX || data->s < 1 || data->s > data->d - 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data: bad sizes n %lld, d %lld, s %lld", (long long)data->n,
                      (long long)data->d, (long long)data->s);
  if (!(data->mu_norm >= 0) || !isfinite(data->mu_norm))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data: ||mu|| %g must be finite and >= 0", data->mu_norm);
  for (int64_t i = 0; i < data->n; i++) {
    if (data->y[i] != 1 && data->y[i] != -1)
      return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data: label %d of sample %lld is not +-1", data->y[i],
                        (long long)i);
    if (data->signal_pos[i] > 1)
      return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data: signal position %d of sample %lld is not 0 or 1",
                        data->signal_pos[i], (long long)i);
    const int32_t *idx = data->noise_idx + i * data->s;
    const double *val = data->noise_val + i * data->s;
    for (int64_t j = 0; j < data->s; j++) {
      if (idx[j] < 1 || idx[j] >= data->d || (j > 0 && idx[j] <= idx[j - 1]))
        return sparq_fail(SPARQ_ERR_ARG,
                          "sparq_signgd_data: noise coordinate %d of sample %lld is out of 1..d-1 or not ascending",
                          idx[j], (long long)i);
      if (!isfinite(val[j]))
        return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data: noise value %lld of sample %lld is not finite",
                          (long long)j, (long long)i);
    }
  }
  return SPARQ_OK;
}

sparq_status sparq_signgd_data_patch(const sparq_signgd_data *data, int64_t i, int p, double *out) {
  if (!data || !out || !data->y || i < 0 || i >= data->n || (p != 0 && p != 1))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_data_patch: bad arguments (sample %lld, patch %d)", (long long)i,
                      p);
  memset(out, 0, (size_t)data->d * sizeof *out);
  sg_axpy(out, 1.0, sg_patch_get(data, i, p));
  return SPARQ_OK;
}
