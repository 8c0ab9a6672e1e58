/* Generated Sparse VideoGen heads with a planted structure (spec §8 test 5).
 *
 * A spatial head gives every frame f a code vector c_f, a temporal head every
 * raster position p a code c_p; the video rows of Q and K are
 *   q = SVG_CASE_NOISE z + c,  k = SVG_CASE_NOISE z' + c  (z, z' ~ N(0, I)),
 * with each code a random direction of norm sqrt(SVG_CASE_LOGIT sqrt(d)), so
 * a query and a key that share a code score about SVG_CASE_LOGIT at the
 * default scale 1/sqrt(d) while unrelated codes score about
 * N(0, (SVG_CASE_LOGIT / sqrt(d))^2). Attention mass then sits on the same
 * frame (spatial) or on the same position in every frame (temporal). Text
 * rows of Q and K and all of V are N(0, 1). Every (tensor, b, h) has its own
 * Philox stream, so the numbers do not depend on the thread count. */
#include <math.h>

#include "kernels/svg_internal.h"
#include "sparq/base.h"

/* A temporal query shares its code with only F keys out of S, so the planted
 * mass F e^logit must dominate the S - F unrelated keys for the head to be
 * as concentrated as the paper's heads: at F = 16, S = 4096, logit 5 leaves
 * two thirds of the mass outside the band (rel-L2 0.78 against dense at
 * budget 0.25), logit 9 about 5 % (rel-L2 0.06). */
#define SVG_CASE_LOGIT 9.0
#define SVG_CASE_NOISE 0.5f

enum { STREAM_Q = 1, STREAM_K = 2, STREAM_V = 3, STREAM_CODE = 4 };

static uint64_t stream_id(int which, int64_t head) { return ((uint64_t)which << 56) ^ (uint64_t)head; }

/* One head: [S, d] rows of q, k, v; codes is scratch for max(F, P) x d. */
static void make_head(const svg_geom *g, int64_t d, sparq_svg_head type, uint64_t seed, int64_t head, float *q,
                      float *k, float *v, float *codes) {
  const int64_t ncodes = type == SPARQ_SVG_TEMPORAL ? g->P : g->F;
  const double norm = sqrt(SVG_CASE_LOGIT * sqrt((double)d));
  sparq_rng rng = sparq_rng_make(seed, stream_id(STREAM_CODE, head));
  for (int64_t n = 0; n < ncodes; n++) {
    float *c = codes + n * d;
    double ss = 0.0;
    for (int64_t e = 0; e < d; e++) {
      c[e] = sparq_rng_normal(&rng);
      ss += (double)c[e] * c[e];
    }
    const double scale = ss > 0.0 ? norm / sqrt(ss) : 0.0;
    for (int64_t e = 0; e < d; e++) c[e] = (float)(c[e] * scale);
  }
  sparq_rng rq = sparq_rng_make(seed, stream_id(STREAM_Q, head)), rk = sparq_rng_make(seed, stream_id(STREAM_K, head)),
            rv = sparq_rng_make(seed, stream_id(STREAM_V, head));
  for (int64_t i = 0; i < g->S; i++) {
    float *qi = q + i * d, *ki = k + i * d, *vi = v + i * d;
    const float *c = NULL;
    if (!svg_is_text(g, i)) {
      const int64_t x = i - g->voff, f = x / g->P, p = x % g->P;
      c = codes + (type == SPARQ_SVG_TEMPORAL ? p : f) * d;
    }
    for (int64_t e = 0; e < d; e++) {
      const float zq = sparq_rng_normal(&rq), zk = sparq_rng_normal(&rk);
      qi[e] = c ? SVG_CASE_NOISE * zq + c[e] : zq;
      ki[e] = c ? SVG_CASE_NOISE * zk + c[e] : zk;
      vi[e] = sparq_rng_normal(&rv);
    }
  }
}

sparq_status sparq_svg_make_case(int kind, int64_t B, int64_t H, int64_t d, const sparq_svg_options *opts,
                                 uint64_t seed, float *q, float *k, float *v, sparq_svg_head *planted) {
  const char *who = "sparq_svg_make_case";
  if (kind < 0 || kind > 2)
    return sparq_fail(SPARQ_ERR_ARG, "%s: kind %d does not exist (0 spatial, 1 temporal, 2 mixed)", who, kind);
  svg_geom g;
  sparq_status st = svg_geom_make(opts, 0, who, &g);
  if (st != SPARQ_OK) return st;
  if (B < 1 || H < 1 || d < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B %lld, H %lld and d %lld must be >= 1", who, (long long)B, (long long)H,
                      (long long)d);
  if (!q || !k || !v) return sparq_fail(SPARQ_ERR_ARG, "%s: q, k and v must not be NULL", who);
  size_t heads, n, bytes;
  if (!sparq_size_mul((size_t)B, (size_t)H, &heads) || !sparq_size_mul(heads, (size_t)g.S, &n) ||
      !sparq_size_mul(n, (size_t)d, &n) || !sparq_size_mul(n, sizeof(float), &bytes) || heads > (size_t)INT64_MAX)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B %lld x H %lld x S %lld x d %lld overflows", who, (long long)B,
                      (long long)H, (long long)g.S, (long long)d);
  const int64_t nheads = (int64_t)heads, ncodes = g.F > g.P ? g.F : g.P;
  const size_t head_elems = (size_t)g.S * (size_t)d;
  int failed = 0;
#pragma omp parallel
  {
    float *codes = sparq_alloc((size_t)ncodes * (size_t)d * sizeof(float), "sparq_svg_make_case codes");
    if (!codes) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < nheads; bh++) {
      if (!codes) continue;
      const int64_t h = bh % H;
      const sparq_svg_head type =
          kind == 0 ? SPARQ_SVG_SPATIAL : kind == 1 || h % 2 == 1 ? SPARQ_SVG_TEMPORAL : SPARQ_SVG_SPATIAL;
      const size_t off = (size_t)bh * head_elems;
      make_head(&g, d, type, seed, bh, q + off, k + off, v + off, codes);
      if (planted) planted[bh] = type;
    }
    sparq_free(codes);
  }
  if (failed) return sparq_fail(SPARQ_ERR_NOMEM, "%s: no memory for %lld code vectors of %lld floats", who,
                                (long long)ncodes, (long long)d);
  return SPARQ_OK;
}
