/* Sparse VideoGen layout: options, the band width, the mask predicate, the
 * frame-major <-> token-major permutation and the per-query key intervals
 * (spec §2 and §4; conventions in svg_internal.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/svg_internal.h"
#include "sparq/base.h"

sparq_svg_options sparq_svg_options_default(int64_t frames, int64_t frame_tokens) {
  sparq_svg_options o;
  memset(&o, 0, sizeof o);
  o.frames = frames;
  o.frame_tokens = frame_tokens;
  o.text_tokens = 0;
  o.text = SPARQ_SVG_TEXT_NONE;
  o.budget = 0.25;
  o.block = 64;
  o.inclusive_width = false;
  o.profile_rows = 32;
  o.sink = SPARQ_SVG_SINK_OFF;
  o.inner = SPARQ_ATTN_FLASH_F32;
  o.seed = 0;
  o.force = NULL;
  return o;
}

sparq_status svg_check_options(const sparq_svg_options *o, const char *where) {
  if (!o) return sparq_fail(SPARQ_ERR_ARG, "%s: opts is NULL", where);
  if (o->frames < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: frames %lld must be >= 1", where, (long long)o->frames);
  if (o->frame_tokens < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: frame_tokens %lld must be >= 1", where, (long long)o->frame_tokens);
  if (o->text_tokens < 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: text_tokens %lld must be >= 0", where, (long long)o->text_tokens);
  if (o->text != SPARQ_SVG_TEXT_NONE && o->text != SPARQ_SVG_TEXT_FIRST && o->text != SPARQ_SVG_TEXT_LAST)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown text placement %d (none 0, first 1, last 2)", where, (int)o->text);
  if (o->text == SPARQ_SVG_TEXT_NONE && o->text_tokens != 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: text_tokens %lld needs a text placement (first or last), not none", where,
                      (long long)o->text_tokens);
  if (o->text != SPARQ_SVG_TEXT_NONE && o->text_tokens == 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: text placement %s with text_tokens 0; use text none", where,
                      o->text == SPARQ_SVG_TEXT_FIRST ? "first" : "last");
  /* S = L + F P, and S * S (pair counts) in int64 */
  const int64_t F = o->frames, P = o->frame_tokens, L = o->text_tokens;
  if (P > (INT64_MAX - L) / F)
    return sparq_fail(SPARQ_ERR_ARG, "%s: text_tokens %lld + frames %lld x frame_tokens %lld overflows int64", where,
                      (long long)L, (long long)F, (long long)P);
  const int64_t S = L + F * P;
  if (S > INT64_MAX / S)
    return sparq_fail(SPARQ_ERR_ARG, "%s: sequence length %lld is too long (S^2 overflows int64)", where, (long long)S);
  if (!(o->budget > 0.0 && o->budget <= 1.0))
    return sparq_fail(SPARQ_ERR_ARG, "%s: budget %g must be in (0, 1] (the kept fraction of the scores)", where,
                      o->budget);
  if (o->block < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: block %lld must be >= 1", where, (long long)o->block);
  if (o->profile_rows < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: profile_rows %lld must be >= 1", where, (long long)o->profile_rows);
  if (o->sink != SPARQ_SVG_SINK_OFF && o->sink != SPARQ_SVG_SINK_PARITY && o->sink != SPARQ_SVG_SINK_FRAME0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown sink %d (off 0, parity 1, frame0 2)", where, (int)o->sink);
  if (!(o->warmup_layers >= 0.0 && o->warmup_layers <= 1.0) || !(o->warmup_steps >= 0.0 && o->warmup_steps <= 1.0))
    return sparq_fail(SPARQ_ERR_ARG, "%s: warmup_layers %g and warmup_steps %g must be in [0, 1]", where,
                      o->warmup_layers, o->warmup_steps);
  if ((o->warmup_layers > 0 && (o->n_layers < 1 || o->layer < 0)) ||
      (o->warmup_steps > 0 && (o->n_steps < 1 || o->step < 0)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: a dense warm-up needs layer >= 0 of n_layers >= 1 (or step of n_steps)",
                      where);
  if (o->inner != SPARQ_ATTN_FLASH_F32 && o->inner != SPARQ_ATTN_SAGE_CPU)
    return sparq_fail(SPARQ_ERR_ARG, "%s: inner variant %s (%d) is not supported (flash_f32 or sage_cpu)", where,
                      sparq_attn_variant_name(o->inner), (int)o->inner);
  return SPARQ_OK;
}

int64_t sparq_svg_band_width(int64_t S, int64_t L, double rho, int64_t block, bool inclusive) {
  if (S < 1 || L < 0 || L > S || block < 1 || isnan(rho)) {
    sparq_fail(SPARQ_ERR_ARG, "sparq_svg_band_width: bad arguments S %lld, L %lld, budget %g, block %lld",
               (long long)S, (long long)L, rho, (long long)block);
    return -1;
  }
  const double rho2 = rho - 2.0 * (double)L / (double)S;
  if (rho2 <= 0.0) return 0;
  if (rho2 >= 1.0) return S;
  const double w = (double)S * (1.0 - sqrt(1.0 - rho2));
  const double blocks = inclusive ? ceil(w / (double)block) : floor(w / (double)block);
  /* w < S, so blocks < S / block + 1 fits; the product is clamped to S */
  if (blocks * (double)block >= (double)S) return S;
  return (int64_t)blocks * block;
}

sparq_status svg_geom_make(const sparq_svg_options *o, int64_t wt, const char *where, svg_geom *g) {
  sparq_status st = svg_check_options(o, where);
  if (st != SPARQ_OK) return st;
  memset(g, 0, sizeof *g);
  g->F = o->frames, g->P = o->frame_tokens, g->L = o->text_tokens;
  g->Sv = g->F * g->P;
  g->S = g->L + g->Sv;
  g->voff = svg_video_offset(o->text, g->L);
  g->t0 = o->text == SPARQ_SVG_TEXT_FIRST ? 0 : g->Sv;
  g->t1 = g->t0 + g->L;
  if (wt < 0) wt = sparq_svg_band_width(g->S, g->L, o->budget, o->block, o->inclusive_width);
  g->wt = wt > g->S ? g->S : wt;
  g->inclusive = o->inclusive_width;
  g->sink = o->sink;
  return SPARQ_OK;
}

bool sparq_svg_visible(const sparq_svg_options *opts, sparq_svg_head head, int64_t wt, int64_t i, int64_t j) {
  svg_geom g;
  if (svg_geom_make(opts, wt < 0 ? 0 : wt, "sparq_svg_visible", &g) != SPARQ_OK) return false;
  if (i < 0 || j < 0 || i >= g.S || j >= g.S) return false;
  if (head != SPARQ_SVG_SPATIAL && head != SPARQ_SVG_TEMPORAL && head != SPARQ_SVG_DENSE) return false;
  return svg_geom_visible(&g, head, i, j);
}

sparq_status sparq_svg_permute(const sparq_svg_options *opts, const float *in, float *out, int64_t d, bool inverse) {
  const char *who = "sparq_svg_permute";
  svg_geom g;
  sparq_status st = svg_geom_make(opts, 0, who, &g);
  if (st != SPARQ_OK) return st;
  if (!in || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: in and out must not be NULL", who);
  if (d < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: d %lld must be >= 1", who, (long long)d);
  size_t n, bytes;
  if (!sparq_size_mul((size_t)g.S, (size_t)d, &n) || !sparq_size_mul(n, sizeof(float), &bytes))
    return sparq_fail(SPARQ_ERR_ARG, "%s: S %lld x d %lld overflows", who, (long long)g.S, (long long)d);
  const uintptr_t a = (uintptr_t)in, b = (uintptr_t)out;
  if (a < b + bytes && b < a + bytes) return sparq_fail(SPARQ_ERR_ARG, "%s: out overlaps in", who);
  const size_t row = (size_t)d * sizeof(float);
  if (g.L > 0) memcpy(out + (size_t)g.t0 * (size_t)d, in + (size_t)g.t0 * (size_t)d, (size_t)g.L * row);
  const float *src = in + (size_t)g.voff * (size_t)d;
  float *dst = out + (size_t)g.voff * (size_t)d;
  for (int64_t f = 0; f < g.F; f++)
    for (int64_t p = 0; p < g.P; p++) {
      const size_t v = (size_t)(f * g.P + p), u = (size_t)(p * g.F + f);
      if (inverse)
        memcpy(dst + v * (size_t)d, src + u * (size_t)d, row);
      else
        memcpy(dst + u * (size_t)d, src + v * (size_t)d, row);
    }
  return SPARQ_OK;
}

/* ------------------------------------------------------------ key sets */

static int64_t ceil_div(int64_t a, int64_t b) { /* b > 0, any a */
  const int64_t q = a / b;
  return q * b < a ? q + 1 : q;
}

void svg_keys_of(const svg_geom *g, sparq_svg_head head, int64_t i, svg_keys *keys) {
  keys->nseg = keys->nf0 = 0;
  if (head == SPARQ_SVG_DENSE || svg_is_text(g, i)) {
    keys->seg[keys->nseg++] = (svg_interval){0, g->S};
    return;
  }
  const int64_t x = i - g->voff;
  /* the band on current video indices: |x - y| < wt, or <= wt */
  int64_t lo = x - g->wt + (g->inclusive ? 0 : 1), hi = x + g->wt + (g->inclusive ? 1 : 0);
  if (lo < 0) lo = 0;
  if (hi > g->Sv) hi = g->Sv;
  svg_interval c[3];
  int n = 0;
  if (g->L > 0) c[n++] = (svg_interval){g->t0, g->t1};
  if (lo < hi) c[n++] = (svg_interval){g->voff + lo, g->voff + hi};
  /* the current layout's first P video rows: frame 0 for a spatial head,
   * the parity sink of a permuted temporal head */
  if (g->sink == SPARQ_SVG_SINK_PARITY || (g->sink == SPARQ_SVG_SINK_FRAME0 && head == SPARQ_SVG_SPATIAL))
    c[n++] = (svg_interval){g->voff, g->voff + g->P};
  for (int s = 1; s < n; s++) /* sort by start */
    for (int t = s; t > 0 && c[t].a < c[t - 1].a; t--) {
      const svg_interval tmp = c[t];
      c[t] = c[t - 1], c[t - 1] = tmp;
    }
  for (int s = 0; s < n; s++) {
    svg_interval *last = keys->nseg ? &keys->seg[keys->nseg - 1] : NULL;
    if (last && c[s].a <= last->b) {
      if (c[s].b > last->b) last->b = c[s].b;
    } else {
      keys->seg[keys->nseg++] = c[s];
    }
  }
  if (head == SPARQ_SVG_TEMPORAL && g->sink == SPARQ_SVG_SINK_FRAME0) {
    /* frame-0 key p is at u = p F; those with lo <= p F < hi are in the band */
    int64_t pa = g->P, pb = g->P;
    if (lo < hi) pa = ceil_div(lo, g->F), pb = ceil_div(hi, g->F);
    if (pa > 0) keys->f0[keys->nf0++] = (svg_interval){0, pa};
    if (pb < g->P) keys->f0[keys->nf0++] = (svg_interval){pb, g->P};
  }
}

int64_t svg_visible_pairs(const svg_geom *g, sparq_svg_head head) {
  int64_t n = 0;
  svg_keys keys;
  for (int64_t i = 0; i < g->S; i++) {
    svg_keys_of(g, head, i, &keys);
    n += svg_keys_count(&keys);
  }
  return n;
}

bool sparq_svg_in_warmup(const sparq_svg_options *o) {
  if (!o) return false;
  if (o->warmup_layers > 0 && o->n_layers >= 1 && o->layer < (int64_t)floor(o->warmup_layers * (double)o->n_layers))
    return true;
  return o->warmup_steps > 0 && o->n_steps >= 1 && o->step < (int64_t)floor(o->warmup_steps * (double)o->n_steps);
}
