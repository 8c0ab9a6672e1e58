/* The dense reference of the MoE layer (moe.h): every expert on every row,
 * double precision, no dispatch. The gates use moe_router.c's rules on
 * logits computed in double. */
#include <math.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/moe.h"

static double gelu_d(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* R[t] from logits z (double), as the fast path decides it. */
static void gates_row(const sparq_moe_dims *d, const double *z, double *R) {
  const int64_t E = d->E;
  if (d->router == SPARQ_MOE_RELU) {
    for (int64_t e = 0; e < E; e++) R[e] = z[e] > 0.0 ? z[e] : 0.0;
    return;
  }
  double m = z[0], sum = 0.0, p[SPARQ_MOE_MAX_EXPERTS];
  for (int64_t e = 1; e < E; e++) m = z[e] > m ? z[e] : m;
  for (int64_t e = 0; e < E; e++) sum += (p[e] = exp(z[e] - m));
  unsigned char chosen[SPARQ_MOE_MAX_EXPERTS] = {0};
  for (int64_t j = 0; j < d->k; j++) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; e++)
      if (!chosen[e] && (best < 0 || p[e] > p[best])) best = e;
    if (best < 0) break;
    chosen[best] = 1;
  }
  for (int64_t e = 0; e < E; e++) R[e] = chosen[e] ? p[e] / sum : 0.0;
}

sparq_status sparq_moe_forward_ref(const sparq_moe_dims *d, const sparq_moe_weights *w, const float *x, float *y,
                                   float *gates, int64_t N) {
  sparq_status s = sparq_moe_dims_check(d);
  if (s) return s;
  if (!w || !x || !y || N < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_moe_forward_ref: bad argument");
  const int64_t C = d->C, H = d->H, E = d->E;
  double *h = sparq_alloc((size_t)H * sizeof(double), "MoE reference");
  double *acc = sparq_alloc((size_t)C * sizeof(double), "MoE reference");
  if (!h || !acc) {
    sparq_free(h);
    sparq_free(acc);
    return SPARQ_ERR_NOMEM;
  }
  for (int64_t t = 0; t < N; t++) {
    const float *xr = x + t * C;
    double z[SPARQ_MOE_MAX_EXPERTS], R[SPARQ_MOE_MAX_EXPERTS];
    for (int64_t e = 0; e < E; e++) {
      double a = 0.0;
      for (int64_t c = 0; c < C; c++) a += (double)w->router[e * C + c] * xr[c];
      z[e] = a;
    }
    gates_row(d, z, R);
    memset(acc, 0, (size_t)C * sizeof(double));
    for (int64_t e = 0; e < E; e++) {
      if (gates) gates[t * E + e] = (float)R[e];
      if (R[e] == 0.0) continue;
      for (int64_t j = 0; j < H; j++) {
        double a = w->fc_b ? w->fc_b[e * H + j] : 0.0;
        const float *wr = w->fc_w + (e * H + j) * C;
        for (int64_t c = 0; c < C; c++) a += (double)wr[c] * xr[c];
        h[j] = gelu_d(a);
      }
      for (int64_t c = 0; c < C; c++) {
        double a = w->proj_b ? w->proj_b[e * C + c] : 0.0;
        const float *wr = w->proj_w + (e * C + c) * H;
        for (int64_t j = 0; j < H; j++) a += (double)wr[j] * h[j];
        acc[c] += R[e] * a;
      }
    }
    for (int64_t c = 0; c < C; c++) y[t * C + c] = (float)acc[c];
  }
  sparq_free(h);
  sparq_free(acc);
  return SPARQ_OK;
}
