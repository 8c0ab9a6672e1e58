/* Sparse VideoGen's Sage inner path (see svg_sage.h). */
#include "kernels/svg_sage.h"

#include <math.h>
#include <string.h>

#include "sparq/base.h"

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

sparq_status svg_sage_setup(float sm_scale, int64_t dp, const char *who, svg_sage_call *call) {
  if (dp > ATTN_MAX_DIM)
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: inner sage_cpu supports d <= 256 (padded d %lld)", who,
                      (long long)dp);
  memset(call, 0, sizeof *call);
  sparq_attn_options o = sparq_attn_options_default();
  o.variant = SPARQ_ATTN_SAGE_CPU;
  attn_problem p;
  memset(&p, 0, sizeof p);
  p.opts = &o;
  p.dp = dp;
  p.scale = sm_scale;
  sparq_status st = sage_config_resolve(&p, &call->cfg);
  if (st != SPARQ_OK) return st;
  if (call->cfg.smooth_q) /* sage_cpu never smooths Q; dS per query block is not wired here */
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: inner sage_cpu with smooth Q is not supported", who);
  call->cfg.refine = SPARQ_ATTN_OFF; /* the band's tiles run one pass (refine_k is not wired here) */
  call->k = sage_pick_kernels(&call->cfg);
  call->tau_log2e = sm_scale * SAGE_LOG2E;
  call->dp = dp;
  return SPARQ_OK;
}

/* ------------------------------------------------------------ scratch */

static void carve_seq(unsigned char *base, size_t *at, int64_t cap, int64_t dp, svg_sage_seq *s) {
  cap = sage_round_up(cap > 0 ? cap : 1, SAGE_BK);
  s->cap = cap, s->n = 0, s->first = 0, s->step = 0;
  s->k = (int8_t *)sage_take(base, at, (size_t)(cap * dp));
  s->corr = (int32_t *)sage_take(base, at, (size_t)cap * 4);
  s->scale = (float *)sage_take(base, at, (size_t)cap * 4);
  s->v = sage_take(base, at, (size_t)(cap * dp) * 2);
}

static size_t carve(const svg_band_geom *g, unsigned char *base, svg_sage_head *h) {
  const int64_t S = g->S, dp = g->dp, Sq = S + 2 * SAGE_BQ, Sk = sage_round_up(S, SAGE_BK);
  size_t at = 0;
  h->q_hat = sage_take(base, &at, (size_t)(Sq * dp));
  h->q_scale = (float *)sage_take(base, &at, (size_t)Sq * 4);
  h->k_rows = (int8_t *)sage_take(base, &at, (size_t)(S * dp));
  h->k_scale = (float *)sage_take(base, &at, (size_t)S * 4);
  h->k_mean = (float *)sage_take(base, &at, (size_t)dp * 4);
  h->v_mean = (float *)sage_take(base, &at, (size_t)dp * 4);
  h->v_scale = (float *)sage_take(base, &at, (size_t)dp * 4);
  h->fs = (float *)sage_take(base, &at, (size_t)dp * 4);
  h->v_rows = sage_take(base, &at, (size_t)(S * dp) * 2);
  h->v_full = sage_take(base, &at, (size_t)(Sk * dp) * 2);
  h->tmp = (float *)sage_take(base, &at, (size_t)(S * dp) * 4);
  h->amax = (float *)sage_take(base, &at, (size_t)(S + 64) * 4);
  carve_seq(base, &at, S, dp, &h->cache[0]);
  carve_seq(base, &at, g->L, dp, &h->cache[1]);
  carve_seq(base, &at, g->P, dp, &h->cache[2]);
  carve_seq(base, &at, g->P, dp, &h->cache[3]);
  carve_seq(base, &at, g->Sv, dp, &h->cache[4]);
  carve_seq(base, &at, S, dp, &h->slot);
  unsigned char *item = sage_take(base, &at, sage_scratch_bytes(dp));
  if (base) h->item = sage_scratch_at(item, dp);
  h->lim = (int64_t *)sage_take(base, &at, SAGE_P_ROWS * sizeof(int64_t));
  return at;
}

size_t svg_sage_scratch_bytes(const svg_band_geom *g) {
  svg_sage_head h;
  return carve(g, NULL, &h);
}

/* ------------------------------------------------------------ packing */

/* Index of V-hat element (key j, channel c) in the PV operand layout. */
static size_t v_index(sage_pv_kind kind, int64_t j, int64_t c, int64_t dp) {
  switch (kind) {
    case SAGE_PV_BF16: return (size_t)((j / 2) * dp * 2 + c * 2 + (j & 1));
    case SAGE_PV_U8: return (size_t)((j / 4) * dp * 4 + c * 4 + (j & 3));
    default: return (size_t)(j * dp + c);
  }
}

/* Packs the keys first + j step, j < n, into s (zeros past n). */
static void pack_seq(const svg_sage_head *h, int64_t first, int64_t step, int64_t n, svg_sage_seq *s) {
  const int64_t dp = h->g->dp, npad = sage_round_up(n, SAGE_BK);
  const sage_pv_kind kind = h->call->cfg.pv;
  s->first = first, s->step = step, s->n = n;
  const int8_t *restrict k_rows = h->k_rows;
  int8_t *restrict k_packed = s->k;
  int32_t *restrict corr = s->corr;
  float *restrict scale = s->scale;
  for (int64_t j = 0; j < n; j++) {
    const int64_t row = svg_band_src_row(h->g, first + j * step);
    const int8_t *kr = k_rows + row * dp;
    int8_t *dst = k_packed + ((j / 16) * (dp / 4)) * 64 + (j % 16) * 4;
    int32_t sum = 0;
    for (int64_t c4 = 0; c4 < dp / 4; c4++) memcpy(dst + c4 * 64, kr + c4 * 4, 4);
    for (int64_t c = 0; c < dp; c++) sum += kr[c];
    corr[j] = 128 * sum;
    scale[j] = h->k_scale[row];
  }
  for (int64_t j = n; j < npad; j++) {
    int8_t *dst = s->k + ((j / 16) * (dp / 4)) * 64 + (j % 16) * 4;
    for (int64_t c4 = 0; c4 < dp / 4; c4++) memset(dst + c4 * 64, 0, 4);
    s->corr[j] = 0, s->scale[j] = 0.0f;
  }
  if (kind == SAGE_PV_U8) {
    int8_t *v = s->v;
    const int8_t *rows = h->v_rows;
    memset(v + (n / 4) * 4 * dp, 0, (size_t)((npad - n / 4 * 4) * dp));
    for (int64_t j = 0; j < n; j++) {
      const int8_t *src = rows + svg_band_src_row(h->g, first + j * step) * dp;
      for (int64_t c = 0; c < dp; c++) v[v_index(kind, j, c, dp)] = src[c];
    }
  } else {
    uint16_t *v = s->v;
    const uint16_t *rows = h->v_rows;
    memset(v + (n / 2) * 2 * dp, 0, (size_t)((npad - n / 2 * 2) * dp) * 2);
    if (kind == SAGE_PV_BF16) {
      /* keys 2i and 2i + 1 interleaved channel by channel (a loop the
       * compiler vectorizes, unlike one stride-2 store per key) */
      for (int64_t j = 0; j + 1 < n; j += 2) {
        const uint16_t *restrict a = rows + svg_band_src_row(h->g, first + j * step) * dp;
        const uint16_t *restrict b = rows + svg_band_src_row(h->g, first + (j + 1) * step) * dp;
        uint16_t *restrict dst = v + j * dp;
        for (int64_t c = 0; c < dp; c++) dst[2 * c] = a[c], dst[2 * c + 1] = b[c];
      }
      if (n & 1) {
        const uint16_t *a = rows + svg_band_src_row(h->g, first + (n - 1) * step) * dp;
        uint16_t *dst = v + (n - 1) * dp;
        for (int64_t c = 0; c < dp; c++) dst[2 * c] = a[c];
      }
    } else {
      for (int64_t j = 0; j < n; j++)
        memcpy(v + j * dp, rows + svg_band_src_row(h->g, first + j * step) * dp, (size_t)dp * 2);
    }
  }
}

/* ------------------------------------------------------------ pre-pass */

void svg_sage_prepare(svg_sage_head *h, const svg_sage_call *call, const svg_band_geom *g, const float *q,
                      const float *k, const float *v, unsigned char *scratch) {
  carve(g, scratch, h);
  h->call = call, h->g = g;
  const sage_config *cfg = &call->cfg;
  const int64_t S = g->S, dp = g->dp, Sq = S + 2 * SAGE_BQ, Sk = sage_round_up(S, SAGE_BK);

  /* Q: per-token INT8, + 128 for vpdpbusd, scale with tau log2(e) folded
   * in; a permuted head's rows are quantized in the given (frame-major)
   * order into tmp, then gathered into the current order */
  /* (byte stores may alias anything, so the loops use local pointers: with
   * h->q_hat reloaded per byte they were the pre-pass's largest cost) */
  uint8_t *restrict q_hat = h->q_hat;
  float *restrict q_scale = h->q_scale;
  const float tau = call->tau_log2e;
  if (g->permuted) {
    int8_t *q8 = (int8_t *)h->tmp;
    float *qs = h->tmp + (S * dp + 3) / 4;
    sage_quantize_rows(q, S, dp, NULL, NULL, cfg->qmax, cfg->gran, true, h->amax, q8, qs);
    for (int64_t t = 0; t < S; t++) {
      const int64_t src = svg_band_src_row(g, t);
      const int8_t *restrict from = q8 + src * dp;
      uint8_t *restrict to = q_hat + t * dp;
      for (int64_t c = 0; c < dp; c++) to[c] = (uint8_t)(from[c] + 128);
      q_scale[t] = qs[src] * tau;
    }
  } else {
    sage_quantize_rows(q, S, dp, NULL, NULL, cfg->qmax, cfg->gran, true, h->amax, (int8_t *)q_hat, q_scale);
    for (int64_t i = 0; i < S * dp; i++) q_hat[i] = (uint8_t)((int8_t)q_hat[i] + 128);
    for (int64_t t = 0; t < S; t++) q_scale[t] *= tau;
  }
  memset(h->q_hat + S * dp, 128, (size_t)((Sq - S) * dp));
  for (int64_t t = S; t < Sq; t++) h->q_scale[t] = 0.0f;

  /* K: smoothed by the mean of all the head's keys, per-token INT8 */
  if (cfg->smooth_k) sage_mean_rows(k, S, dp, h->k_mean);
  else memset(h->k_mean, 0, (size_t)dp * sizeof(float));
  sage_quantize_rows(k, S, dp, cfg->smooth_k ? h->k_mean : NULL, NULL, cfg->qmax, cfg->gran, false, h->amax,
                     h->k_rows, h->k_scale);

  /* V: sage's operand for all S keys, then back to plain rows for gathering */
  sage_kv kv;
  memset(&kv, 0, sizeof kv);
  kv.v_mean = h->v_mean, kv.v_scale = h->v_scale, kv.v_hat = h->v_full;
  sage_prepare_v(cfg, v, S, Sk, dp, h->tmp, &kv);
  /* one loop per operand layout (v_index's cases), so each vectorizes */
  if (cfg->pv == SAGE_PV_U8) {
    const int8_t *src = h->v_full;
    int8_t *dst = h->v_rows;
    for (int64_t j = 0; j < S; j++) {
      const int8_t *restrict from = src + (j / 4) * dp * 4 + (j & 3);
      int8_t *restrict to = dst + j * dp;
      for (int64_t c = 0; c < dp; c++) to[c] = from[4 * c];
    }
  } else if (cfg->pv == SAGE_PV_BF16) {
    const uint16_t *src = h->v_full;
    uint16_t *dst = h->v_rows;
    for (int64_t j = 0; j < S; j++) {
      const uint16_t *restrict from = src + (j / 2) * dp * 2 + (j & 1);
      uint16_t *restrict to = dst + j * dp;
      for (int64_t c = 0; c < dp; c++) to[c] = from[2 * c];
    }
  } else {
    memcpy(h->v_rows, h->v_full, (size_t)(S * dp) * 2);
  }
  const float pscale = cfg->round == SAGE_ROUND_U8 ? exp2f(cfg->sigma) / 255.0f : 1.0f;
  for (int64_t c = 0; c < dp; c++) h->fs[c] = h->v_scale[c] * pscale;

  /* the sequences the query blocks read (svg_sage.h). The left band part of
   * a block, keys split - 1, split - 2, ... with split a multiple of 64,
   * starts on a block boundary of the video read backwards when 64 divides
   * Sv; otherwise find_seq packs it per block. */
  for (int i = 0; i < SVG_SAGE_CACHES; i++) h->cache[i].n = 0;
  if (g->head == SPARQ_SVG_DENSE) {
    pack_seq(h, 0, 1, S, &h->cache[0]);
    return;
  }
  pack_seq(h, g->video0, 1, g->Sv, &h->cache[0]);
  if (g->L > 0) pack_seq(h, g->text0, 1, g->L, &h->cache[1]);
  if (g->sink == SPARQ_SVG_SINK_FRAME0 && g->head == SPARQ_SVG_TEMPORAL) {
    pack_seq(h, g->video0, g->F, g->P, &h->cache[2]);
    pack_seq(h, g->video0 + (g->P - 1) * g->F, -g->F, g->P, &h->cache[3]);
  }
  if (g->Sv % SAGE_BK == 0) pack_seq(h, g->video0 + g->Sv - 1, -1, g->Sv, &h->cache[4]);
}

/* ------------------------------------------------------------ intervals */

/* The keys first + j step, j < n, from key `*off` of a packed sequence: a
 * cached one where it holds them from a 64-key boundary, else packed now. */
static const svg_sage_seq *find_seq(svg_sage_head *h, int64_t first, int64_t step, int64_t n, int64_t *off) {
  for (int i = 0; i < SVG_SAGE_CACHES; i++) {
    const svg_sage_seq *c = &h->cache[i];
    if (c->n == 0 || c->step != step) continue;
    const int64_t delta = first - c->first;
    if (delta % step != 0) continue;
    const int64_t j0 = delta / step;
    if (j0 < 0 || j0 % SAGE_BK != 0 || j0 + n > c->n) continue;
    *off = j0;
    return c;
  }
  pack_seq(h, first, step, n, &h->slot);
  *off = 0;
  return &h->slot;
}


/* Rows [row0, row0 + rows), rows <= SAGE_BQ: sage_run_item's loop over the
 * key blocks of the sequence with each row's prefix as its mask. */
static void chunk(svg_sage_head *h, int64_t row0, int64_t rows, int64_t first, int64_t step, const int64_t *vis,
                  float *out, int64_t ldo, float *lsum, float *m) {
  const svg_sage_call *call = h->call;
  const sage_config *cfg = &call->cfg;
  const sage_scratch *s = &h->item;
  const int64_t dp = h->g->dp, rows4 = sage_round_up(rows, SAGE_QK_ROWS);
  int64_t nmax = 0;
  for (int64_t r = 0; r < rows4; r++) {
    h->lim[r] = r < rows ? vis[r] : vis[rows - 1];
    if (h->lim[r] > nmax) nmax = h->lim[r];
  }
  if (nmax == 0) return;
  int64_t off;
  const svg_sage_seq *seq = find_seq(h, first, step, nmax, &off);
  for (int64_t r = 0; r < rows4; r++) s->state[r].m = -INFINITY, s->state[r].l = 0.0f;
  memset(s->o, 0, (size_t)(rows4 * dp) * sizeof(float));
  const sage_p_format fmt = sage_p_format_of(cfg);
  const float u8_scale = cfg->round == SAGE_ROUND_U8 ? 255.0f / exp2f(cfg->sigma) : 0.0f;
  const int64_t nkb = cdiv(nmax, SAGE_BK);
  /* A tile of 4 rows none of which sees key block kb skips it: for such a
   * row the masked block would give alpha = 1 and P = 0, i.e. leave its
   * state and O as they are, so skipping is exact. PV runs per contiguous
   * run of active tiles. */
  for (int64_t kb = 0; kb < nkb; kb++) {
    const int64_t key0 = kb * SAGE_BK, at = off + key0;
    const size_t voff = (size_t)(at * dp);
    int64_t run0 = -1;
    for (int64_t rt = 0; rt <= rows4; rt += SAGE_QK_ROWS) {
      int64_t lo = nmax, hi = 0;
      if (rt < rows4)
        for (int r = 0; r < SAGE_QK_ROWS; r++) {
          if (h->lim[rt + r] < lo) lo = h->lim[rt + r];
          if (h->lim[rt + r] > hi) hi = h->lim[rt + r];
        }
      if (hi > key0) { /* active tile */
        if (run0 < 0) run0 = rt;
        sage_qk_tile t;
        memset(&t, 0, sizeof t);
        t.q = h->q_hat + (row0 + rt) * dp;
        t.q_scale = h->q_scale + row0 + rt;
        t.k = seq->k + at * dp;
        t.k_corr = seq->corr + at;
        t.k_scale = seq->scale + at;
        t.dp = dp;
        t.row0 = row0 + rt;
        t.key0 = key0;
        t.kv_len = nmax;
        t.causal = false;
        t.limit = h->lim + rt;
        t.masked = key0 + SAGE_BK > lo;
        t.sigma = cfg->sigma;
        t.fmt = fmt;
        t.u8_scale = u8_scale;
        t.p = (char *)s->p + (size_t)rt * SAGE_BK * sage_p_bytes(fmt);
        t.state = s->state + rt;
        t.alpha = s->alpha + rt;
        call->k.qk(&t);
        continue;
      }
      if (run0 < 0) continue;
      /* PV of tiles [run0, rt) */
      const int64_t n = rt - run0;
      const void *p = (const char *)s->p + (size_t)run0 * SAGE_BK * sage_p_bytes(fmt);
      float *o = s->o + run0 * dp;
      const float *alpha = s->alpha + run0;
      switch (cfg->pv) {
        case SAGE_PV_F16: call->k.pv_f16(p, (const uint16_t *)seq->v + voff, n, dp, o, alpha); break;
        case SAGE_PV_U8: call->k.pv_u8(p, (const int8_t *)seq->v + voff, n, dp, o, alpha); break;
        case SAGE_PV_BF16: call->k.pv_bf16(p, (const uint16_t *)seq->v + voff, n, dp, o, alpha, cfg->accum, NULL); break;
      }
      run0 = -1;
    }
  }
  /* as sage_run_item: O / l dV (+ v_mean) */
  for (int64_t r = 0; r < rows; r++) {
    if (vis[r] <= 0) continue;
    const float l = s->state[r].l;
    float *dst = out + r * ldo;
    for (int64_t c = 0; c < dp; c++) dst[c] = s->o[r * dp + c] / l * h->fs[c] + h->v_mean[c];
    lsum[r] = l, m[r] = s->state[r].m;
  }
}

void svg_sage_interval(svg_sage_head *h, int64_t row0, int64_t rows, int64_t first, int64_t step, const int64_t *vis,
                       float *out, int64_t ldo, float *lsum, float *m) {
  for (int64_t r0 = 0; r0 < rows; r0 += SAGE_BQ) {
    const int64_t n = rows - r0 < SAGE_BQ ? rows - r0 : SAGE_BQ;
    chunk(h, row0 + r0, n, first, step, vis + r0, out + r0 * ldo, ldo, lsum + r0, m + r0);
  }
}
