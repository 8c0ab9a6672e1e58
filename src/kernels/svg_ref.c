/* The FP64 masked attention of one Sparse VideoGen head: the oracle the band
 * kernel is tested against. Row by row, the mask predicate evaluated per
 * (i, j) in frame-major order, no S x S matrix. */
#include <math.h>
#include <string.h>

#include "kernels/svg_internal.h"
#include "sparq/base.h"

sparq_status svg_attention_ref(const sparq_svg_options *opts, sparq_svg_head head, int64_t wt, const float *q,
                               const float *k, const float *v, float *o, double *lse, int64_t d, double sm_scale) {
  const char *who = "svg_attention_ref";
  svg_geom g;
  sparq_status st = svg_geom_make(opts, wt, who, &g);
  if (st != SPARQ_OK) return st;
  if (!q || !k || !v || !o) return sparq_fail(SPARQ_ERR_ARG, "%s: q, k, v and o must not be NULL", who);
  if (d < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: d %lld must be >= 1", who, (long long)d);
  if (head != SPARQ_SVG_SPATIAL && head != SPARQ_SVG_TEMPORAL && head != SPARQ_SVG_DENSE)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown head type %d", who, (int)head);
  if (!(sm_scale >= 0.0 && isfinite(sm_scale)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: sm_scale %g must be finite and >= 0", who, sm_scale);
  size_t n;
  if (!sparq_size_mul((size_t)g.S, (size_t)d, &n) || !sparq_size_mul(n, sizeof(double), &n))
    return sparq_fail(SPARQ_ERR_ARG, "%s: S %lld x d %lld overflows", who, (long long)g.S, (long long)d);
  const double scale = sm_scale > 0.0 ? sm_scale : 1.0 / sqrt((double)d);
  const int64_t S = g.S;
  double *s = sparq_alloc((size_t)S * sizeof(double), "svg_attention_ref scores");
  double *acc = sparq_alloc((size_t)d * sizeof(double), "svg_attention_ref row");
  unsigned char *vis = sparq_alloc((size_t)S, "svg_attention_ref mask");
  if (!s || !acc || !vis) {
    sparq_free(s), sparq_free(acc), sparq_free(vis);
    return SPARQ_ERR_NOMEM;
  }
  for (int64_t i = 0; i < S; i++) {
    const float *qi = q + (size_t)i * (size_t)d;
    double m = -INFINITY;
    for (int64_t j = 0; j < S; j++) {
      vis[j] = svg_geom_visible(&g, head, i, j);
      if (!vis[j]) continue;
      const float *kj = k + (size_t)j * (size_t)d;
      double dot = 0.0;
      for (int64_t c = 0; c < d; c++) dot += (double)qi[c] * (double)kj[c];
      s[j] = dot * scale;
      if (s[j] > m) m = s[j];
    }
    float *oi = o + (size_t)i * (size_t)d;
    if (m == -INFINITY) { /* no visible key (or every score -inf) */
      memset(oi, 0, (size_t)d * sizeof(float));
      if (lse) lse[i] = -INFINITY;
      continue;
    }
    double l = 0.0;
    memset(acc, 0, (size_t)d * sizeof(double));
    for (int64_t j = 0; j < S; j++) {
      if (!vis[j]) continue;
      const double p = exp(s[j] - m);
      const float *vj = v + (size_t)j * (size_t)d;
      l += p;
      for (int64_t c = 0; c < d; c++) acc[c] += p * (double)vj[c];
    }
    for (int64_t c = 0; c < d; c++) oi[c] = (float)(acc[c] / l);
    if (lse) lse[i] = m + log(l);
  }
  sparq_free(s), sparq_free(acc), sparq_free(vis);
  return SPARQ_OK;
}
