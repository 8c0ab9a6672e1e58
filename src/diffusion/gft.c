/* The network-independent parts of Guidance-Free Training (spec gft.md). */
#include <math.h>

#include "sparq/gft.h"

float sparq_gft_w_to_beta(float w) { return 1.0f / w; }

float sparq_gft_beta_to_w(float beta) { return 1.0f / beta; }

sparq_status sparq_gft_check_beta(float beta, const char *who) {
  if (beta > 0.0f && beta <= 1.0f) return SPARQ_OK;
  return sparq_fail(SPARQ_ERR_ARG,
                    "%s: gft_beta %g is outside (0, 1] (beta = 1/w; beta > 1 would be CFG with w < 1, "
                    "outside the training range)",
                    who, (double)beta);
}

void sparq_gft_draw_beta(sparq_rng *rng, int64_t n, const int32_t *y, int32_t null_class, float *beta,
                         float *beta_in) {
  for (int64_t i = 0; i < n; i++) {
    beta[i] = sparq_rng_uniform(rng);
    beta_in[i] = y[i] == null_class ? 1.0f : beta[i];
  }
}

void sparq_gft_combine(int64_t n, int64_t dim, const float *beta, const float *out_s, const float *out_u,
                       float *pred) {
  for (int64_t i = 0; i < n; i++) {
    const float b = beta[i];
    const float *s = out_s + i * dim, *u = out_u + i * dim;
    float *p = pred + i * dim;
    for (int64_t j = 0; j < dim; j++) p[j] = b * s[j] + (1.0f - b) * u[j];
  }
}

double sparq_gft_loss(int64_t n, int64_t dim, const float *beta, const float *out_s, const float *out_u,
                      const float *target, const float *weight, float dloss, float *dout_s) {
  const float scale = 2.0f * dloss / (float)((double)n * (double)dim);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const float b = beta ? beta[i] : 1.0f, w = weight ? weight[i] : 1.0f;
    const float *s = out_s + i * dim, *u = beta ? out_u + i * dim : NULL, *g = target + i * dim;
    float *d = dout_s ? dout_s + i * dim : NULL;
    /* d pred / d out_s = beta; the detached out_u gets nothing */
    const float k = scale * w * b;
    double row = 0.0;
    for (int64_t j = 0; j < dim; j++) {
      const float p = u ? b * s[j] + (1.0f - b) * u[j] : s[j];
      const float e = p - g[j];
      row += (double)e * (double)e;
      if (d) d[j] = k * e;
    }
    sum += w * row / (double)dim;
  }
  return sum / (double)n;
}
