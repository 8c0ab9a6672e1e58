/* The Sparse VideoGen band kernel (see svg_band.h).
 *
 * A video query block of R <= FLASH_BQ rows y0 .. y0 + R - 1 (video
 * coordinates x in [0, Sv), layout row video0 + x) sees, row by row:
 *   text   all L text keys                       (one interval, prefix L)
 *   band   [a_r, b_r), cut at one split point c with a_r <= c <= b_r:
 *            left  [a_r, c): a suffix of [min a, c), run as a prefix of those
 *                  keys packed in reverse order (V read with stride -ld);
 *            right [c, b_r): a prefix of the keys from c, read from the
 *                  head's forward K^T blocks when c is a multiple of 64, else
 *                  packed for this block;
 *   sink   parity (and frame 0 of a spatial head): keys [0, P) of the
 *          current layout; where they touch the band they are merged into
 *          it (a_r = 0), else they are one more prefix interval [0, P);
 *          frame 0 of a temporal head: the frame-0 keys p F (token-major),
 *          packed once per head forwards and backwards; a row sees those
 *          below its band (prefix ceil(a_r / F)) and above it (reverse prefix
 *          P - ceil(b_r / F)), never one twice.
 * When no split point exists (a band narrower than the block) the block is
 * halved until one does. Text query rows and DENSE heads see every key. */
#include "kernels/svg_band.h"

#include <math.h>
#include <string.h>

#include "kernels/attn_flash.h"
#include "kernels/svg_sage.h"
#include "sparq/base.h"

enum { SVG_NI = 6 }; /* intervals per block: text, sink, left, right, frame-0 forward, frame-0 backward */

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

svg_band_geom svg_band_geom_make(const svg_geom *sg, sparq_svg_head head, int64_t dp) {
  svg_band_geom g;
  g.F = sg->F, g.P = sg->P, g.L = sg->L, g.Sv = sg->Sv, g.S = sg->S;
  g.video0 = sg->voff, g.text0 = sg->t0;
  g.wt = sg->wt, g.inclusive = sg->inclusive, g.sink = sg->sink, g.head = head, g.dp = dp;
  g.permuted = false;
  return g;
}

/* Scratch carved per call of svg_band_head. */
typedef struct band_scratch {
  float *ktv;  /* [cdiv(S,64)] blocks: video keys forward from video0 (DENSE: all keys from 0) */
  float *ktt;  /* [cdiv(L,64)]: text keys */
  float *ktg, *ktgr; /* [cdiv(P,64)] each: frame-0 keys p F forwards / backwards (temporal frame-0 sink) */
  float *ktl;  /* [cdiv(Sv,64) + 1]: this block's left band keys, backwards */
  float *ktf;  /* [cdiv(Sv,64) + 1]: this block's right band keys when c is not block-aligned */
  float *q, *o, *m, *l, *pt, *alpha; /* flash item scratch */
  float *out[SVG_NI], *lsum[SVG_NI], *mi[SVG_NI];
  int64_t *vis[SVG_NI];
} band_scratch;

static size_t carve(const svg_band_geom *g, float *base, band_scratch *s) {
  const int64_t dp = g->dp, blk = dp * FLASH_BK;
  size_t at = 0;
#define TAKE(ptr, n)                          \
  do {                                        \
    if (base) (ptr) = base + at;              \
    at += round16((size_t)(n));               \
  } while (0)
  TAKE(s->ktv, cdiv(g->S, FLASH_BK) * blk);
  TAKE(s->ktt, cdiv(g->L, FLASH_BK) * blk);
  TAKE(s->ktg, cdiv(g->P, FLASH_BK) * blk);
  TAKE(s->ktgr, cdiv(g->P, FLASH_BK) * blk);
  TAKE(s->ktl, (cdiv(g->Sv, FLASH_BK) + 1) * blk);
  TAKE(s->ktf, (cdiv(g->Sv, FLASH_BK) + 1) * blk);
  TAKE(s->q, FLASH_BQ * dp);
  TAKE(s->o, FLASH_BQ * dp);
  TAKE(s->m, FLASH_BQ);
  TAKE(s->l, 16 * FLASH_BQ);
  TAKE(s->pt, FLASH_RG * FLASH_BK);
  TAKE(s->alpha, 16);
  for (int i = 0; i < SVG_NI; i++) {
    TAKE(s->out[i], FLASH_BQ * dp);
    TAKE(s->lsum[i], FLASH_BQ);
    TAKE(s->mi[i], FLASH_BQ);
    float *vf = NULL;
    TAKE(vf, 2 * FLASH_BQ);
    if (base) s->vis[i] = (int64_t *)(void *)vf;
  }
#undef TAKE
  return at;
}

size_t svg_band_scratch_floats(const svg_band_geom *g) {
  band_scratch s;
  return carve(g, NULL, &s);
}


/* Packs n keys starting at row x (rows x + j * ld, ld may be negative) as
 * K^T blocks into kt. */
static void pack_keys(flash_pack_fn pack, const float *x, int64_t ld, int64_t n, int64_t dp, float *kt) {
  for (int64_t kb = 0; kb * FLASH_BK < n; kb++) {
    const int64_t m = n - kb * FLASH_BK < FLASH_BK ? n - kb * FLASH_BK : FLASH_BK;
    pack(x + kb * FLASH_BK * ld, ld, m, dp, 1.0f, kt + kb * dp * FLASH_BK);
  }
}

typedef struct band_ctx {
  const svg_band_geom *g;
  const float *q, *k, *v;
  float *o;
  int64_t ld;
  float qscale;
  flash_item_fn kernel;
  flash_pack_fn pack;
  band_scratch *s;
  svg_sage_head *sage; /* non-NULL: the Sage inner path runs the intervals (svg_sage.h) */
} band_ctx;

/* Runs interval i over query rows [row0, row0 + rows) of the layout: key j
 * is layout row first + j step (K^T blocks at kt, V row j at v + j ldv for
 * flash_f32; kt is unused on the Sage path), row r sees the first vis[i][r]
 * keys. Writes out[i], lsum[i], mi[i] for rows with vis > 0 (others are
 * never read). */
static void run_interval(const band_ctx *c, int i, int64_t row0, int64_t rows, int64_t first, int64_t step,
                         const float *kt, const float *v, int64_t ldv, float *out, int64_t ldo) {
  band_scratch *s = c->s;
  if (c->sage) {
    svg_sage_interval(c->sage, row0, rows, first, step, s->vis[i], out, ldo, s->lsum[i], s->mi[i]);
    return;
  }
  const int64_t padded = cdiv(rows, FLASH_RG) * FLASH_RG;
  for (int64_t r = rows; r < padded; r++) s->vis[i][r] = s->vis[i][rows - 1];
  flash_item it = {.qsrc = c->q + row0 * c->ld,
                   .ldq = c->ld,
                   .qscale = c->qscale,
                   .kt = kt,
                   .v = v,
                   .ldv = ldv,
                   .visible = s->vis[i],
                   .rows = rows,
                   .padded = padded,
                   .dp = c->g->dp,
                   .out = out,
                   .ldo = ldo,
                   .lsum = s->lsum[i],
                   .q = s->q,
                   .o = s->o,
                   .m = s->m,
                   .l = s->l,
                   .pt = s->pt,
                   .alpha = s->alpha,
                   .pf = NULL};
  c->kernel(&it);
  memcpy(s->mi[i], s->m, (size_t)rows * sizeof(float));
}

/* Merges the active intervals of rows [0, rows) into O rows row0 ..; a row
 * with one interval copies it (so one interval is bit-identical to dense). */
static void merge(const band_ctx *c, const bool *used, int64_t row0, int64_t rows) {
  const band_scratch *s = c->s;
  const int64_t dp = c->g->dp;
  for (int64_t r = 0; r < rows; r++) {
    float *dst = c->o + svg_band_src_row(c->g, row0 + r) * c->ld;
    int act = 0, only = -1;
    float mx = -INFINITY;
    for (int i = 0; i < SVG_NI; i++)
      if (used[i] && s->vis[i][r] > 0) {
        act++, only = i;
        if (s->mi[i][r] > mx) mx = s->mi[i][r];
      }
    if (act == 0) {
      memset(dst, 0, (size_t)dp * sizeof(float)); /* unreachable: every query sees a key */
      continue;
    }
    if (act == 1) {
      memcpy(dst, s->out[only] + r * dp, (size_t)dp * sizeof(float));
      continue;
    }
    /* The interval weights in double (a few exp2 per row); the columns in
     * float, which the compiler vectorizes: a double column loop was 6% of
     * the Sage band path's time, and the float sum of at most SVG_NI terms
     * with coefficients in [0, 1] is within a few ulps of it. */
    double w[SVG_NI], wsum = 0.0;
    for (int i = 0; i < SVG_NI; i++) {
      w[i] = 0.0;
      if (used[i] && s->vis[i][r] > 0) w[i] = (double)s->lsum[i][r] * exp2((double)s->mi[i][r] - (double)mx);
      wsum += w[i];
    }
    bool first = true;
    for (int i = 0; i < SVG_NI; i++) {
      if (!(w[i] > 0.0)) continue;
      const float coef = (float)(w[i] / wsum);
      const float *restrict src = s->out[i] + r * dp;
      float *restrict d = dst;
      if (first)
        for (int64_t col = 0; col < dp; col++) d[col] = coef * src[col];
      else
        for (int64_t col = 0; col < dp; col++) d[col] += coef * src[col];
      first = false;
    }
    if (first) /* no weight > 0: NaN scores; the NaN the double sum gave */
      for (int64_t col = 0; col < dp; col++) dst[col] = (float)(0.0 / wsum);
  }
}

/* Text query rows [row0, row0 + rows) (layout): all text keys + all video keys. */
static int64_t text_block(const band_ctx *c, int64_t row0, int64_t rows) {
  const svg_band_geom *g = c->g;
  band_scratch *s = c->s;
  bool used[SVG_NI] = {false};
  for (int64_t r = 0; r < rows; r++) s->vis[0][r] = g->L, s->vis[3][r] = g->Sv;
  used[0] = used[3] = true;
  run_interval(c, 0, row0, rows, g->text0, 1, s->ktt, c->v + g->text0 * c->ld, c->ld, s->out[0], g->dp);
  run_interval(c, 3, row0, rows, g->video0, 1, s->ktv, c->v + g->video0 * c->ld, c->ld, s->out[3], g->dp);
  merge(c, used, row0, rows);
  return rows * g->S;
}

/* Video query rows y0 .. y0 + R - 1 (video coordinates). */
static int64_t video_block(const band_ctx *c, int64_t y0, int64_t R) {
  const svg_band_geom *g = c->g;
  band_scratch *s = c->s;
  const int64_t Sv = g->Sv, P = g->P, F = g->F, ld = c->ld, dp = g->dp;
  const bool plain_sink =
      g->sink == SPARQ_SVG_SINK_PARITY || (g->sink == SPARQ_SVG_SINK_FRAME0 && g->head != SPARQ_SVG_TEMPORAL);
  const bool gathered = g->sink == SPARQ_SVG_SINK_FRAME0 && g->head == SPARQ_SVG_TEMPORAL;
  int64_t a[FLASH_BQ], b[FLASH_BQ], sink[FLASH_BQ], gf[FLASH_BQ], gr[FLASH_BQ];
  int64_t max_a = 0, min_b = Sv, min_a = Sv, max_b = 0;
  bool any_band = false;
  for (int64_t r = 0; r < R; r++) {
    const int64_t y = y0 + r;
    int64_t lo = g->inclusive ? y - g->wt : y - g->wt + 1, hi = g->inclusive ? y + g->wt + 1 : y + g->wt;
    if (lo < 0) lo = 0;
    if (hi > Sv) hi = Sv;
    if (hi < lo) hi = lo;
    sink[r] = 0, gf[r] = 0, gr[r] = 0;
    if (gathered) gf[r] = cdiv(lo, F), gr[r] = P - cdiv(hi, F);
    if (plain_sink) {
      if (hi == lo) lo = 0, hi = P;                 /* no band: the sink alone */
      else if (lo <= P) hi = hi > P ? hi : P, lo = 0; /* the sink touches the band: one interval */
      else sink[r] = P;
    }
    a[r] = lo, b[r] = hi;
    if (hi > lo) {
      any_band = true;
      if (lo > max_a) max_a = lo;
      if (hi < min_b) min_b = hi;
      if (lo < min_a) min_a = lo;
      if (hi > max_b) max_b = hi;
    }
  }
  int64_t split = 0;
  bool aligned = true;
  if (any_band) {
    if (max_a > min_b) { /* no common split point: halve the block */
      const int64_t h = R / 2;
      return video_block(c, y0, h) + video_block(c, y0 + h, R - h);
    }
    split = cdiv(max_a, FLASH_BK) * FLASH_BK;
    if (split > min_b) split = min_b / FLASH_BK * FLASH_BK;
    if (split < max_a) split = max_a, aligned = false;
  }

  bool used[SVG_NI] = {false};
  int64_t entries = 0;
  const int64_t row0 = g->video0 + y0;
  const float *vv = c->v + g->video0 * ld, *kv = c->k + g->video0 * ld;
  for (int64_t r = 0; r < R; r++) {
    const bool band = b[r] > a[r];
    s->vis[0][r] = g->L;
    s->vis[1][r] = sink[r];
    s->vis[2][r] = band ? split - a[r] : 0;
    s->vis[3][r] = band ? b[r] - split : 0;
    s->vis[4][r] = gf[r];
    s->vis[5][r] = gr[r];
    for (int i = 0; i < SVG_NI; i++) {
      entries += s->vis[i][r];
      if (s->vis[i][r] > 0) used[i] = true;
    }
  }
  const int64_t v0 = g->video0;
  if (used[0]) run_interval(c, 0, row0, R, g->text0, 1, s->ktt, c->v + g->text0 * ld, ld, s->out[0], dp);
  if (used[1]) run_interval(c, 1, row0, R, v0, 1, s->ktv, vv, ld, s->out[1], dp);
  if (used[2]) {
    if (!c->sage) pack_keys(c->pack, kv + (split - 1) * ld, -ld, split - min_a, dp, s->ktl);
    run_interval(c, 2, row0, R, v0 + split - 1, -1, s->ktl, vv + (split - 1) * ld, -ld, s->out[2], dp);
  }
  if (used[3]) {
    const float *kt = s->ktv + split / FLASH_BK * dp * FLASH_BK;
    if (!aligned && !c->sage) pack_keys(c->pack, kv + split * ld, ld, max_b - split, dp, s->ktf), kt = s->ktf;
    run_interval(c, 3, row0, R, v0 + split, 1, kt, vv + split * ld, ld, s->out[3], dp);
  }
  if (used[4]) run_interval(c, 4, row0, R, v0, F, s->ktg, vv, F * ld, s->out[4], dp);
  if (used[5])
    run_interval(c, 5, row0, R, v0 + (P - 1) * F, -F, s->ktgr, vv + (P - 1) * F * ld, -F * ld, s->out[5], dp);
  merge(c, used, row0, R);
  return entries;
}

int64_t svg_band_head(const svg_band_geom *g, const float *q, const float *k, const float *v, float *o, int64_t ld,
                      float sm_scale, float *scratch) {
  return svg_band_head_inner(g, q, k, v, o, ld, sm_scale, scratch, NULL);
}

int64_t svg_band_head_inner(const svg_band_geom *g, const float *q, const float *k, const float *v, float *o,
                            int64_t ld, float sm_scale, float *scratch, struct svg_sage_head *sage) {
  return svg_band_head_part(g, q, k, v, o, ld, sm_scale, scratch, sage, 0, 1);
}

/* Query block b of the head in [first, last): text blocks come first. */
static bool block_in_part(int64_t b, int64_t blocks, int64_t part, int64_t parts) {
  return b >= blocks * part / parts && b < blocks * (part + 1) / parts;
}

int64_t svg_band_head_part(const svg_band_geom *g, const float *q, const float *k, const float *v, float *o,
                           int64_t ld, float sm_scale, float *scratch, struct svg_sage_head *sage, int64_t part,
                           int64_t parts) {
  band_scratch s;
  carve(g, scratch, &s);
  band_ctx c = {.g = g,
                .q = q,
                .k = k,
                .v = v,
                .o = o,
                .ld = ld,
                .qscale = sm_scale * FLASH_LOG2E,
                .kernel = flash_pick_item(),
                .pack = flash_pick_pack(),
                .s = &s,
                .sage = sage};
  const int64_t dp = g->dp;
  int64_t entries = 0;
  if (g->head == SPARQ_SVG_DENSE) { /* one interval [0, S): flash_f32 itself */
    if (!sage) pack_keys(c.pack, k, ld, g->S, dp, s.ktv);
    const int64_t blocks = (g->S + FLASH_BQ - 1) / FLASH_BQ;
    int64_t kept = 0;
    for (int64_t row0 = 0; row0 < g->S; row0 += FLASH_BQ) {
      if (!block_in_part(row0 / FLASH_BQ, blocks, part, parts)) continue;
      const int64_t rows = g->S - row0 < FLASH_BQ ? g->S - row0 : FLASH_BQ;
      kept += rows * g->S;
      for (int64_t r = 0; r < rows; r++) s.vis[3][r] = g->S;
      run_interval(&c, 3, row0, rows, 0, 1, s.ktv, v, ld, o + row0 * ld, ld);
    }
    return kept;
  }
  if (!sage) pack_keys(c.pack, k + g->video0 * ld, ld, g->Sv, dp, s.ktv);
  if (g->L > 0 && !sage) pack_keys(c.pack, k + g->text0 * ld, ld, g->L, dp, s.ktt);
  if (g->sink == SPARQ_SVG_SINK_FRAME0 && g->head == SPARQ_SVG_TEMPORAL && !sage) {
    const float *k0 = k + g->video0 * ld;
    pack_keys(c.pack, k0, g->F * ld, g->P, dp, s.ktg);
    pack_keys(c.pack, k0 + (g->P - 1) * g->F * ld, -g->F * ld, g->P, dp, s.ktgr);
  }
  const int64_t text_blocks = (g->L + FLASH_BQ - 1) / FLASH_BQ;
  const int64_t blocks = text_blocks + (g->Sv + FLASH_BQ - 1) / FLASH_BQ;
  for (int64_t row0 = 0; row0 < g->L; row0 += FLASH_BQ)
    if (block_in_part(row0 / FLASH_BQ, blocks, part, parts))
      entries += text_block(&c, g->text0 + row0, g->L - row0 < FLASH_BQ ? g->L - row0 : FLASH_BQ);
  for (int64_t y0 = 0; y0 < g->Sv; y0 += FLASH_BQ)
    if (block_in_part(text_blocks + y0 / FLASH_BQ, blocks, part, parts))
      entries += video_block(&c, y0, g->Sv - y0 < FLASH_BQ ? g->Sv - y0 : FLASH_BQ);
  return entries;
}
