/* sparq_svg_attention: Sparse VideoGen attention (spec
 * shared/spec/sparse-videogen.md §3-§5), three timed phases:
 *   1. profile: each (b, h) gets opts->force[b H + h] or svg_profile's
 *      decision (parallel over heads);
 *   2. layout: heads that do not run in place (temporal heads of the FP32
 *      path, permuted to token-major; every head when d is not a multiple
 *      of 32, padded with zero columns for the flash tiles) get their Q, K,
 *      V copied once into per-call scratch [S][dp];
 *   3. kernel: svg_band_head per head (parallel over heads, per-thread
 *      scratch), then O of the copied heads goes back (inverse permutation,
 *      counted as layout time).
 * With opts->inner == SPARQ_ATTN_SAGE_CPU the same intervals run on
 * sage_cpu's kernels: each head is quantized and packed once in its current
 * layout (svg_sage_prepare; a temporal head's rows are gathered into that
 * order by the pre-pass itself, so it needs no copy), then
 * svg_band_head_inner (svg_sage.h).
 * Every head is computed by one thread from its own rows, so the result does
 * not depend on the thread count or the schedule. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/thread_scratch.h"
#include "kernels/svg_band.h"
#include "kernels/svg_internal.h"
#include "kernels/svg_sage.h"
#include "sparq/base.h"

static const char *const WHO = "sparq_svg_attention";

/* Copies one head's [S][d] rows into dst [S][dp] (zero columns past d), video
 * rows permuted frame-major -> token-major when `permute`. */
static void layout_in(const svg_geom *g, bool permute, const float *src, int64_t d, float *dst, int64_t dp) {
  const size_t row = (size_t)d * sizeof(float);
  for (int64_t i = 0; i < g->S; i++) {
    const int64_t from = permute ? svg_from_current(g, SPARQ_SVG_TEMPORAL, i) : i;
    memcpy(dst + i * dp, src + from * d, row);
    if (dp > d) memset(dst + i * dp + d, 0, (size_t)(dp - d) * sizeof(float));
  }
}

/* The inverse: dst [S][d] frame-major from src [S][dp] in the head's layout. */
static void layout_out(const svg_geom *g, bool permute, const float *src, int64_t dp, float *dst, int64_t d) {
  const size_t row = (size_t)d * sizeof(float);
  for (int64_t i = 0; i < g->S; i++) {
    const int64_t from = permute ? svg_to_current(g, SPARQ_SVG_TEMPORAL, i) : i;
    memcpy(dst + i * d, src + from * dp, row);
  }
}

/* Scratch is kept per calling thread between calls (base/thread_scratch.h):
 * a video transformer calls SVG once per layer and step with the same
 * sizes, and at 2 threads the page faults of fresh blocks contend and cost
 * more than the permutation itself. */

sparq_status sparq_svg_attention(const float *q, const float *k, const float *v, float *o, int64_t B, int64_t H,
                                 int64_t d, const sparq_svg_options *opts, sparq_svg_head *decisions,
                                 sparq_svg_stats *stats) {
  svg_geom g;
  sparq_status st = svg_geom_make(opts, -1, WHO, &g);
  if (st != SPARQ_OK) return st;
  if (!q || !k || !v || !o) return sparq_fail(SPARQ_ERR_ARG, "%s: q, k, v and o must not be NULL", WHO);
  if (B < 1 || H < 1 || d < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B %lld, H %lld and d %lld must be >= 1", WHO, (long long)B, (long long)H,
                      (long long)d);
  if (g.wt < 0) return SPARQ_ERR_ARG; /* sparq_svg_band_width recorded why */
  const int64_t S = g.S, heads = B * H, dp = (d + 31) / 32 * 32;
  size_t elems;
  if (!sparq_size_mul((size_t)heads, (size_t)S, &elems) || !sparq_size_mul(elems, (size_t)dp, &elems) ||
      elems > (size_t)INT64_MAX / 16)
    return sparq_fail(SPARQ_ERR_ARG, "%s: B %lld x H %lld x S %lld x d %lld is too large", WHO, (long long)B,
                      (long long)H, (long long)S, (long long)d);
  if (opts->force)
    for (int64_t i = 0; i < heads; i++)
      if (opts->force[i] != SPARQ_SVG_SPATIAL && opts->force[i] != SPARQ_SVG_TEMPORAL &&
          opts->force[i] != SPARQ_SVG_DENSE)
        return sparq_fail(SPARQ_ERR_ARG, "%s: force[%lld] = %d is not a head type (spatial 0, temporal 1, dense 2)",
                          WHO, (long long)i, (int)opts->force[i]);
  const float scale = (float)(1.0 / sqrt((double)d));
  const bool sage = opts->inner == SPARQ_ATTN_SAGE_CPU;
  svg_sage_call sage_call;
  if (sage && (st = svg_sage_setup(scale, dp, WHO, &sage_call)) != SPARQ_OK) return st;
  const int threads = omp_get_max_threads();

  sparq_svg_head *dec = sparq_alloc((size_t)heads * sizeof *dec, "SVG decisions");
  int64_t *entries = sparq_calloc((size_t)heads, sizeof *entries, "SVG entries");
  int64_t *slot = sparq_alloc((size_t)heads * sizeof *slot, "SVG layout slots");
  float *pscr = NULL, *kscr = NULL, *copies = NULL;
  unsigned char *sscr = NULL;
  st = SPARQ_OK;
  if (!dec || !entries || !slot) {
    st = SPARQ_ERR_NOMEM;
    goto done;
  }

  /* 1. decisions */
  const double t0 = sparq_now();
  if (sparq_svg_in_warmup(opts)) {
    for (int64_t i = 0; i < heads; i++) dec[i] = SPARQ_SVG_DENSE;
  } else if (opts->force) {
    memcpy(dec, opts->force, (size_t)heads * sizeof *dec);
  } else {
    const size_t pf = (svg_profile_scratch_floats(&g, opts->profile_rows, d) + 15) / 16 * 16;
    pscr = thread_scratch(SCRATCH_SVG_PROFILE, (size_t)threads * pf * sizeof(float), "SVG profiling scratch");
    if (!pscr) {
      st = SPARQ_ERR_NOMEM;
      goto done;
    }
    int failed = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t bh = 0; bh < heads; bh++) {
      sparq_thread_set_ftz();
      svg_profile_result r;
      const size_t at = (size_t)bh * (size_t)S * (size_t)d;
      if (svg_profile(opts, &g, q + at, k + at, v + at, d, scale, (uint64_t)bh,
                      pscr + (size_t)omp_get_thread_num() * pf, &r) != SPARQ_OK) {
#pragma omp atomic write
        failed = 1;
        dec[bh] = SPARQ_SVG_SPATIAL;
      } else {
        dec[bh] = r.head;
      }
    }
    if (failed) {
      st = sparq_fail(SPARQ_ERR_INTERNAL, "%s: profiling failed", WHO);
      goto done;
    }
  }
  const double t1 = sparq_now();

  /* 2. layout: copies of heads that cannot run in place. The Sage path
   * permutes a temporal head inside its pre-pass (svg_band_geom.permuted),
   * so only the FP32 path copies for the permutation. */
  int64_t ncopy = 0;
  for (int64_t bh = 0; bh < heads; bh++)
    slot[bh] = (dec[bh] == SPARQ_SVG_TEMPORAL && !sage) || dp != d ? ncopy++ : -1;
  const size_t per = (size_t)S * (size_t)dp; /* floats of one [S][dp] matrix */
  if (ncopy > 0) {
    copies = thread_scratch(SCRATCH_SVG_COPIES, (size_t)ncopy * 4 * per * sizeof(float), "SVG layout copies");
    if (!copies) {
      st = SPARQ_ERR_NOMEM;
      goto done;
    }
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t x = 0; x < 3 * heads; x++) {
      const int64_t bh = x / 3, t = x % 3;
      if (slot[bh] < 0) continue;
      const float *src = (t == 0 ? q : t == 1 ? k : v) + (size_t)bh * (size_t)S * (size_t)d;
      layout_in(&g, dec[bh] == SPARQ_SVG_TEMPORAL, src, d, copies + ((size_t)slot[bh] * 4 + (size_t)t) * per, dp);
    }
  }
  const double t2 = sparq_now();

  /* 3. kernel */
  size_t kf = 0;
  for (int ht = 0; ht < 3; ht++) {
    const svg_band_geom bg = svg_band_geom_make(&g, (sparq_svg_head)ht, dp);
    const size_t f = svg_band_scratch_floats(&bg);
    if (f > kf) kf = f;
  }
  kf = (kf + 15) / 16 * 16;
  kscr = thread_scratch(SCRATCH_SVG_KERNEL, (size_t)threads * kf * sizeof(float), "SVG kernel scratch");
  if (!kscr) {
    st = SPARQ_ERR_NOMEM;
    goto done;
  }
  size_t sf = 0; /* Sage scratch bytes per thread */
  if (sage) {
    const svg_band_geom bg = svg_band_geom_make(&g, SPARQ_SVG_SPATIAL, dp);
    sf = (svg_sage_scratch_bytes(&bg) + SPARQ_ALIGN - 1) / SPARQ_ALIGN * SPARQ_ALIGN;
    size_t all;
    if (!sparq_size_mul((size_t)threads, sf, &all)) {
      st = sparq_fail(SPARQ_ERR_NOMEM, "%s: Sage scratch size overflows", WHO);
      goto done;
    }
    sscr = thread_scratch(SCRATCH_SVG_SAGE, all, "SVG Sage scratch");
    if (!sscr) {
      st = SPARQ_ERR_NOMEM;
      goto done;
    }
  }
  /* Few heads: split each into parts so every thread has work (rows are
   * independent, so the split never changes the bits). */
  const int64_t parts = heads >= 2 * threads ? 1 : (2 * threads + heads - 1) / heads;
  int64_t *part_entries = sparq_calloc((size_t)(heads * parts), sizeof *part_entries, "SVG entries");
  /* Temporal heads first: on the Sage path their pre-pass gathers the
   * permuted rows and a head takes about 1.2x a spatial one (8.0 against
   * 6.8 ms at (16, 256), d 64), so taking them first keeps the dynamic
   * schedule's last items short (4 mixed heads on 2 threads lost 8 % to
   * the imbalance). Which thread runs a head never changes its bits. */
  int64_t *order = sparq_alloc((size_t)heads * sizeof *order, "SVG head order");
  if (!part_entries || !order) {
    sparq_free(part_entries), sparq_free(order);
    st = SPARQ_ERR_NOMEM;
    goto done;
  }
  int64_t n_order = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int64_t bh = 0; bh < heads; bh++)
      if ((dec[bh] == SPARQ_SVG_TEMPORAL) == (pass == 0)) order[n_order++] = bh;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t item = 0; item < heads * parts; item++) {
    sparq_thread_set_ftz();
    const int64_t bh = order[item / parts], part = item % parts, slot_item = bh * parts + part;
    svg_band_geom bg = svg_band_geom_make(&g, dec[bh], dp);
    bg.permuted = slot[bh] < 0 && dec[bh] == SPARQ_SVG_TEMPORAL; /* the Sage path, in place */
    float *scr = kscr + (size_t)omp_get_thread_num() * kf;
    const float *hq, *hk, *hv;
    float *ho;
    int64_t ld;
    if (slot[bh] >= 0) {
      float *c = copies + (size_t)slot[bh] * 4 * per;
      hq = c, hk = c + per, hv = c + 2 * per, ho = c + 3 * per, ld = dp;
    } else {
      const size_t at = (size_t)bh * (size_t)S * (size_t)d;
      hq = q + at, hk = k + at, hv = v + at, ho = o + at, ld = d;
    }
    svg_sage_head sh, *shp = NULL;
    if (sage) { /* ld == dp here: in-place heads have d == dp */
      svg_sage_prepare(&sh, &sage_call, &bg, hq, hk, hv, sscr + (size_t)omp_get_thread_num() * sf);
      shp = &sh;
    }
    part_entries[slot_item] = svg_band_head_part(&bg, hq, hk, hv, ho, ld, scale, scr, shp, part, parts);
  }
  sparq_free(order);
  for (int64_t bh = 0; bh < heads; bh++) {
    entries[bh] = 0;
    for (int64_t p = 0; p < parts; p++) entries[bh] += part_entries[bh * parts + p];
  }
  sparq_free(part_entries);
  const double t3 = sparq_now();
  if (ncopy > 0) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t bh = 0; bh < heads; bh++)
      if (slot[bh] >= 0)
        layout_out(&g, dec[bh] == SPARQ_SVG_TEMPORAL, copies + ((size_t)slot[bh] * 4 + 3) * per, dp,
                   o + (size_t)bh * (size_t)S * (size_t)d, d);
  }
  const double t4 = sparq_now();

  if (decisions) memcpy(decisions, dec, (size_t)heads * sizeof *dec);
  if (stats) {
    memset(stats, 0, sizeof *stats);
    double kept = 0.0;
    int64_t sparse = 0;
    for (int64_t bh = 0; bh < heads; bh++) {
      if (dec[bh] == SPARQ_SVG_DENSE) {
        stats->dense_heads++;
        continue;
      }
      if (dec[bh] == SPARQ_SVG_TEMPORAL) stats->temporal_heads++;
      else stats->spatial_heads++;
      kept += (double)entries[bh], sparse++;
    }
    stats->density = sparse > 0 ? kept / ((double)sparse * (double)S * (double)S) : 1.0;
    stats->profile_seconds = t1 - t0;
    stats->layout_seconds = (t2 - t1) + (t4 - t3);
    stats->kernel_seconds = t3 - t2;
  }
done:
  sparq_free(dec), sparq_free(entries), sparq_free(slot);
  return st;
}

void sparq_svg_release_scratch(void) {
  thread_scratch_trim(SCRATCH_SVG_PROFILE, 0);
  thread_scratch_trim(SCRATCH_SVG_COPIES, 0);
  thread_scratch_trim(SCRATCH_SVG_KERNEL, 0);
  thread_scratch_trim(SCRATCH_SVG_SAGE, 0);
}
