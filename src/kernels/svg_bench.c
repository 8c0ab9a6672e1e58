/* The Sparse VideoGen kernel benchmark row (see svg_bench.h). */
#include "kernels/svg_bench.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "sparq/base.h"

sparq_status svg_bench_row(const sparq_svg_options *opts, int kind, int64_t B, int64_t H, int64_t d, uint64_t seed,
                           int warmups, int reps, svg_bench_result *out) {
  const char *who = "svg_bench_row";
  if (!opts || !out || B < 1 || H < 1 || d < 1 || warmups < 0 || reps < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: bad arguments", who);
  if (opts->frames < 1 || opts->frame_tokens < 1 || opts->text_tokens < 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: bad sequence shape", who);
  const int64_t S = opts->text_tokens + opts->frames * opts->frame_tokens;
  const size_t n = (size_t)(B * H * S * d);
  float *q = sparq_alloc(n * sizeof(float), "bench q"), *k = sparq_alloc(n * sizeof(float), "bench k");
  float *v = sparq_alloc(n * sizeof(float), "bench v"), *os = sparq_alloc(n * sizeof(float), "bench O sparse");
  float *od = sparq_alloc(n * sizeof(float), "bench O dense");
  sparq_svg_head *dense = sparq_alloc((size_t)(B * H) * sizeof *dense, "bench decisions");
  sparq_status st = SPARQ_ERR_NOMEM;
  if (!q || !k || !v || !os || !od || !dense) goto done;
  st = sparq_svg_make_case(kind, B, H, d, opts, seed, q, k, v, NULL);
  if (st != SPARQ_OK) goto done;
  for (int64_t i = 0; i < B * H; i++) dense[i] = SPARQ_SVG_DENSE;
  /* The baseline is always the dense FP32 kernel, so an SVG+Sage row shows
   * what sparse and quantized attention give together. */
  sparq_svg_options odn = *opts;
  odn.force = dense;
  odn.inner = SPARQ_ATTN_FLASH_F32;
  memset(out, 0, sizeof *out);
  out->dense_ms = out->sparse_ms = INFINITY;
  sparq_svg_stats s, best = {0};
  for (int r = -warmups; r < reps; r++) {
    const double t0 = sparq_now();
    st = sparq_svg_attention(q, k, v, od, B, H, d, &odn, NULL, NULL);
    if (st != SPARQ_OK) goto done;
    const double t1 = sparq_now();
    st = sparq_svg_attention(q, k, v, os, B, H, d, opts, NULL, &s);
    if (st != SPARQ_OK) goto done;
    const double t2 = sparq_now();
    if (r < 0) continue;
    if ((t1 - t0) * 1e3 < out->dense_ms) out->dense_ms = (t1 - t0) * 1e3;
    if ((t2 - t1) * 1e3 < out->sparse_ms) out->sparse_ms = (t2 - t1) * 1e3, best = s;
  }
  out->speedup = out->dense_ms / out->sparse_ms;
  out->density = best.density;
  out->profile_pct = 100.0 * best.profile_seconds * 1e3 / out->sparse_ms;
  out->layout_pct = 100.0 * best.layout_seconds * 1e3 / out->sparse_ms;
  out->spatial_heads = best.spatial_heads, out->temporal_heads = best.temporal_heads;
  out->dense_heads = best.dense_heads;
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = (double)os[i] - (double)od[i];
    num += e * e, den += (double)od[i] * (double)od[i];
  }
  out->rel_l2 = den > 0 ? sqrt(num / den) : 0;
  out->threads = omp_get_max_threads();
done:
  sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(os), sparq_free(od), sparq_free(dense);
  return st;
}
