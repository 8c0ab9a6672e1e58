/* The Sage variants' driver: sage1, sage2_8b, sage2_4b and sage_cpu
 * (spec: shared/spec/sage-attention.md). Resolves the knobs, runs the
 * pre-pass per kv head and per q head, optionally dumps the intermediates,
 * then runs one work item per (batch, head, block of SAGE_BQ query rows).
 *
 * Every item owns its output rows and walks its key blocks in order on one
 * thread, and every head's pre-pass is a fixed sequence, so the results do
 * not depend on the thread count or the dynamic schedule. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"

/* ------------------------------------------------------------ buffers */

typedef struct sage_buffers {
  /* per kv head, [B * Hkv] blocks */
  float *k_mean, *k_scale, *v_mean, *v_scale;
  int8_t *k_hat;
  int32_t *k_corr;
  void *v_hat;
  /* per q head, [B * Hq] blocks */
  uint8_t *q_hat;
  float *q_scale, *q_delta, *q_mean, *ds, *ds_log2;
} sage_buffers;

static void buffers_free(sage_buffers *b) {
  void *all[] = {b->k_mean, b->k_scale, b->v_mean, b->v_scale, b->k_hat, b->k_corr, b->v_hat,
                 b->q_hat,  b->q_scale, b->q_delta, b->q_mean, b->ds, b->ds_log2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sparq_free(all[i]);
  memset(b, 0, sizeof *b);
}

/* sparq_alloc of a * b * c bytes, overflow-checked. */
static void *alloc3(size_t a, size_t b, size_t c, const char *what, sparq_status *st) {
  size_t n;
  if (*st != SPARQ_OK) return NULL;
  if (!sparq_size_mul(a, b, &n) || !sparq_size_mul(n, c, &n)) {
    *st = sparq_fail(SPARQ_ERR_NOMEM, "attn_forward_sage: %s: size overflows", what);
    return NULL;
  }
  void *p = sparq_alloc(n, what);
  if (!p) *st = SPARQ_ERR_NOMEM;
  return p;
}

/* Geometry shared by every stage. */
typedef struct sage_geom {
  int64_t nq_pad, nk_pad, nqb, dp;
  float tau_log2e;
} sage_geom;

static sage_kv kv_at(const sage_buffers *b, const sage_geom *g, int64_t idx) {
  sage_kv kv;
  const int64_t dp = g->dp, nkp = g->nk_pad;
  kv.k_mean = b->k_mean + idx * dp;
  kv.k_hat = b->k_hat + idx * nkp * dp;
  kv.k_corr = b->k_corr + idx * nkp;
  kv.k_scale = b->k_scale + idx * nkp;
  kv.v_mean = b->v_mean + idx * dp;
  kv.v_scale = b->v_scale + idx * dp;
  kv.v_hat = (char *)b->v_hat + idx * nkp * dp * 2; /* sized for 2-byte elements either way */
  return kv;
}

static sage_q q_at(const sage_buffers *b, const sage_geom *g, int64_t idx) {
  sage_q q;
  const int64_t dp = g->dp, nqp = g->nq_pad;
  q.q_hat = b->q_hat + idx * nqp * dp;
  q.q_scale = b->q_scale + idx * nqp;
  q.q_delta = b->q_delta + idx * nqp;
  q.q_mean = b->q_mean ? b->q_mean + idx * g->nqb * dp : NULL;
  q.ds = b->ds ? b->ds + idx * g->nqb * g->nk_pad : NULL;
  q.ds_log2 = b->ds_log2 ? b->ds_log2 + idx * g->nqb * g->nk_pad : NULL;
  return q;
}

/* ------------------------------------------------------------ pre-pass */

static void prep_kv_head(const attn_problem *p, const sage_config *cfg, const sage_geom *g, sage_kv *kv,
                         int64_t b, int64_t hk, float *amax, int8_t *rows, float *tmp) {
  const int64_t nk = p->kv_len, dp = g->dp;
  const float *k = attn_k_at(p, b, hk);
  if (cfg->smooth_k) sage_mean_rows(k, nk, dp, kv->k_mean);
  else memset(kv->k_mean, 0, (size_t)dp * sizeof(float));
  sage_quantize_rows(k, nk, dp, cfg->smooth_k ? kv->k_mean : NULL, NULL, cfg->qmax, cfg->gran, false, amax, rows,
                     kv->k_scale);
  for (int64_t j = nk; j < g->nk_pad; j++) kv->k_scale[j] = 0.0f;
  sage_pack_k(rows, nk, g->nk_pad, dp, kv->k_hat, kv->k_corr);
  sage_prepare_v(cfg, attn_v_at(p, b, hk), nk, g->nk_pad, dp, tmp, kv);
}

static void prep_q_head(const attn_problem *p, const sage_config *cfg, const sage_geom *g, const sage_kv *kv,
                        sage_q *q, int64_t b, int64_t h, float *amax, int8_t *rows) {
  const int64_t nq = p->q_len, dp = g->dp;
  const float *x = attn_q_at(p, b, h);
  if (cfg->smooth_q) {
    for (int64_t blk = 0; blk < g->nqb; blk++) {
      const int64_t t0 = blk * SAGE_QBLOCK, n = nq - t0 < SAGE_QBLOCK ? nq - t0 : SAGE_QBLOCK;
      sage_mean_rows(x + t0 * dp, n, dp, q->q_mean + blk * dp);
    }
    sage_delta_s(q->q_mean, g->nqb, attn_k_at(p, b, attn_kv_head(p, h)), kv->k_mean, p->kv_len, g->nk_pad, dp,
                 q->ds);
    for (int64_t i = 0; i < g->nqb * g->nk_pad; i++) q->ds_log2[i] = q->ds[i] * g->tau_log2e;
  }
  sage_quantize_rows(x, nq, dp, NULL, cfg->smooth_q ? q->q_mean : NULL, cfg->qmax, cfg->gran, true, amax, rows,
                     q->q_delta);
  for (int64_t i = 0; i < nq * dp; i++) q->q_hat[i] = (uint8_t)(rows[i] + 128);
  memset(q->q_hat + nq * dp, 128, (size_t)((g->nq_pad - nq) * dp));
  for (int64_t t = 0; t < nq; t++) q->q_scale[t] = q->q_delta[t] * g->tau_log2e;
  for (int64_t t = nq; t < g->nq_pad; t++) q->q_scale[t] = 0.0f, q->q_delta[t] = 0.0f;
}

/* ------------------------------------------------------------- kernels */

typedef void (*qk_fn)(const sage_qk_tile *t);

typedef struct sage_kernels {
  qk_fn qk;
  void (*pv_bf16)(const uint16_t *, const uint16_t *, int, int64_t, int64_t, float *, const float *, sage_pv_mode);
  void (*pv_f16)(const uint16_t *, const uint16_t *, int64_t, int64_t, float *, const float *);
  void (*pv_u8)(const uint8_t *, const int8_t *, int64_t, int64_t, float *, const float *);
} sage_kernels;

static sage_kernels pick_kernels(const sage_config *cfg) {
  sage_kernels k = {sage_qk_tile_ref, sage_pv_bf16_ref, sage_pv_f16_ref, sage_pv_u8_ref};
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_has_vnni() && sparq_has_bf16()) k.qk = sage_qk_tile_vnni;
  if (sparq_has_bf16()) k.pv_bf16 = sage_pv_bf16_avx512bf16;
  if (sparq_has_vnni()) k.pv_u8 = sage_pv_u8_vnni;
  if (cfg->hw_f16) k.pv_f16 = sage_pv_f16_avx512fp16;
  else if (sparq_isa_active() == SPARQ_ISA_AVX512) k.pv_f16 = sage_pv_f16_avx512;
#else
  (void)cfg;
#endif
  return k;
}

/* --------------------------------------------------------- work items */

/* Per-thread scratch of the main loop. */
typedef struct sage_scratch {
  void *p;          /* [SAGE_P_ROWS][SAGE_BK] P tile, 4 bytes per element at most */
  uint16_t *p_op;   /* [SAGE_P_ROWS][SAGE_BK] E4M3 P-hat as a BF16/FP16 operand */
  uint8_t *codes;   /* [SAGE_P_ROWS][SAGE_BK] E4M3 codes */
  float *o, *t, *r; /* [SAGE_P_ROWS][dp] O, a 32-key partial sum, the FP22 block accumulator */
  float *alpha, *fs;
  sage_row_state *state;
} sage_scratch;

static size_t scratch_bytes(int64_t dp) {
  const size_t tile = (size_t)SAGE_P_ROWS * SAGE_BK;
  return tile * 4 + tile * 2 + tile + 3 * (size_t)SAGE_P_ROWS * (size_t)dp * 4 + SAGE_P_ROWS * 4 + (size_t)dp * 4 +
         SAGE_P_ROWS * sizeof(sage_row_state) + 8 * SPARQ_ALIGN;
}

static sage_scratch scratch_at(unsigned char *base, int64_t dp) {
  const size_t tile = (size_t)SAGE_P_ROWS * SAGE_BK, od = (size_t)SAGE_P_ROWS * (size_t)dp * 4;
  sage_scratch s;
  size_t at = 0;
#define CARVE(field, type, bytes)                                  \
  s.field = (type)(base + at);                                     \
  at += ((bytes) + SPARQ_ALIGN - 1) / SPARQ_ALIGN * SPARQ_ALIGN
  CARVE(p, void *, tile * 4);
  CARVE(p_op, uint16_t *, tile * 2);
  CARVE(codes, uint8_t *, tile);
  CARVE(o, float *, od);
  CARVE(t, float *, od);
  CARVE(r, float *, od);
  CARVE(alpha, float *, SAGE_P_ROWS * 4);
  CARVE(fs, float *, (size_t)dp * 4);
  CARVE(state, sage_row_state *, SAGE_P_ROWS * sizeof(sage_row_state));
#undef CARVE
  return s;
}

typedef struct sage_run {
  const attn_problem *p;
  const sage_config *cfg;
  const sage_geom *g;
  const sage_buffers *buf;
  sage_kernels k;
  uint16_t e4m3_lut[256]; /* E4M3 code -> the same value as a BF16 or FP16 operand */
} sage_run;

static sage_p_format p_format(const sage_config *cfg) {
  switch (cfg->round) {
    case SAGE_ROUND_BF16: return SAGE_P_BF16;
    case SAGE_ROUND_F16: return SAGE_P_F16;
    case SAGE_ROUND_U8: return SAGE_P_U8;
    default: return SAGE_P_F32; /* E4M3 goes through the bulk codec */
  }
}

/* PV of key block kb for rows4 rows: R = P-hat V-hat, O = alpha O + R or the
 * single-level update (spec §2.6). */
static void pv_block(const sage_run *run, const sage_scratch *s, const void *p_tile, const sage_kv *kv, int64_t kb,
                     int64_t rows4) {
  const int64_t dp = run->g->dp, n = rows4 * dp;
  const sage_config *cfg = run->cfg;
  const size_t voff = (size_t)(kb * SAGE_BK * dp);
  switch (cfg->pv) {
    case SAGE_PV_F16:
      run->k.pv_f16(p_tile, (const uint16_t *)kv->v_hat + voff, rows4, dp, s->o, s->alpha);
      return;
    case SAGE_PV_U8:
      run->k.pv_u8(p_tile, (const int8_t *)kv->v_hat + voff, rows4, dp, s->o, s->alpha);
      return;
    case SAGE_PV_BF16: break;
  }
  const uint16_t *p = p_tile, *v = (const uint16_t *)kv->v_hat + voff;
  switch (cfg->accum) {
    case SAGE_ACC_TWO_F32: run->k.pv_bf16(p, v, SAGE_BK, rows4, dp, s->o, s->alpha, SAGE_PV_FLUSH); break;
    case SAGE_ACC_SINGLE_F32:
      for (int64_t r = 0; r < rows4; r++)
        for (int64_t c = 0; c < dp; c++) s->o[r * dp + c] *= s->alpha[r];
      run->k.pv_bf16(p, v, SAGE_BK, rows4, dp, s->o, s->alpha, SAGE_PV_ADD);
      break;
    case SAGE_ACC_SINGLE_F22:
      /* the MMA accumulator is O itself: rescaled in FP32, then each 32-key
       * MMA leaves 13 mantissa bits */
      for (int64_t r = 0; r < rows4; r++)
        for (int64_t c = 0; c < dp; c++) s->o[r * dp + c] *= s->alpha[r];
      for (int half = 0; half < 2; half++) {
        run->k.pv_bf16(p + 32 * half, v + (size_t)(16 * half * dp * 2), 32, rows4, dp, s->t, s->alpha, SAGE_PV_ZERO);
        for (int64_t i = 0; i < n; i++) s->o[i] = sage_trunc22(s->o[i] + s->t[i]);
      }
      break;
    case SAGE_ACC_TWO_F22:
      for (int half = 0; half < 2; half++) {
        run->k.pv_bf16(p + 32 * half, v + (size_t)(16 * half * dp * 2), 32, rows4, dp, s->t, s->alpha, SAGE_PV_ZERO);
        for (int64_t i = 0; i < n; i++) s->r[i] = sage_trunc22((half ? s->r[i] : 0.0f) + s->t[i]);
      }
      for (int64_t r = 0; r < rows4; r++)
        for (int64_t c = 0; c < dp; c++) s->o[r * dp + c] = fmaf(s->o[r * dp + c], s->alpha[r], s->r[r * dp + c]);
      break;
    default: break;
  }
}

static void run_item(const sage_run *run, const sage_scratch *s, int64_t item) {
  const attn_problem *p = run->p;
  const sage_config *cfg = run->cfg;
  const sage_geom *g = run->g;
  const int64_t dp = g->dp, nqt = (p->q_len + SAGE_BQ - 1) / SAGE_BQ;
  const int64_t b = item / (p->q_heads * nqt), h = (item / nqt) % p->q_heads, i0 = (item % nqt) * SAGE_BQ;
  const int64_t rows = p->q_len - i0 < SAGE_BQ ? p->q_len - i0 : SAGE_BQ, rows4 = sage_round_up(rows, SAGE_QK_ROWS);
  const int64_t kv_idx = b * p->kv_heads + attn_kv_head(p, h);
  const sage_kv kv = kv_at(run->buf, g, kv_idx);
  const sage_q q = q_at(run->buf, g, b * p->q_heads + h);
  float *out = attn_o_at(p, b, h) + i0 * dp;
  float *lse = p->lse ? p->lse + (b * p->q_heads + h) * p->q_len + i0 : NULL;

  /* visible keys grow with the row, so the last row bounds the item */
  const int64_t kv_end = attn_visible_keys(p, i0 + rows - 1);
  const int64_t nkb = (kv_end + SAGE_BK - 1) / SAGE_BK;
  for (int64_t r = 0; r < rows4; r++) s->state[r].m = -INFINITY, s->state[r].l = 0.0f;
  memset(s->o, 0, (size_t)(rows4 * dp) * sizeof(float));

  const sage_p_format fmt = p_format(cfg);
  const float u8_scale = cfg->round == SAGE_ROUND_U8 ? 255.0f / exp2f(cfg->sigma) : 0.0f;
  for (int64_t kb = 0; kb < nkb; kb++) {
    const int64_t key0 = kb * SAGE_BK;
    for (int64_t rt = 0; rt < rows4; rt += SAGE_QK_ROWS) {
      sage_qk_tile t;
      const int64_t row0 = i0 + rt;
      t.q = q.q_hat + row0 * dp;
      t.q_scale = q.q_scale + row0;
      for (int r = 0; r < SAGE_QK_ROWS; r++)
        t.ds[r] = cfg->smooth_q ? q.ds_log2 + ((row0 + r) / SAGE_QBLOCK) * g->nk_pad + key0 : NULL;
      t.k = kv.k_hat + key0 * dp;
      t.k_corr = kv.k_corr + key0;
      t.k_scale = kv.k_scale + key0;
      t.dp = dp;
      t.row0 = row0;
      t.key0 = key0;
      t.kv_len = p->kv_len;
      t.causal = p->causal;
      t.causal_offset = p->causal_offset;
      t.masked = key0 + SAGE_BK > p->kv_len || (p->causal && key0 + SAGE_BK - 1 > row0 + p->causal_offset);
      t.sigma = cfg->sigma;
      t.fmt = fmt;
      t.u8_scale = u8_scale;
      t.p = (char *)s->p + rt * SAGE_BK * (fmt == SAGE_P_F32 ? 4 : fmt == SAGE_P_U8 ? 1 : 2);
      t.state = s->state + rt;
      t.alpha = s->alpha + rt;
      run->k.qk(&t);
    }
    const void *p_tile = s->p;
    if (cfg->round == SAGE_ROUND_E4M3) {
      const size_t n = (size_t)(rows4 * SAGE_BK);
      sparq_f32_to_e4m3_n(s->p, s->codes, n);
      for (size_t i = 0; i < n; i++) s->p_op[i] = run->e4m3_lut[s->codes[i]];
      p_tile = s->p_op;
    }
    pv_block(run, s, p_tile, &kv, kb, rows4);
  }

  /* O_i = O_i / l_i * dV (+ v_mean); u8 P-hat carries 2^sigma / 255 more */
  const float pscale = cfg->round == SAGE_ROUND_U8 ? exp2f(cfg->sigma) / 255.0f : 1.0f;
  for (int64_t c = 0; c < dp; c++) s->fs[c] = kv.v_scale[c] * pscale;
  const float *x = attn_q_at(p, b, h) + i0 * dp;
  for (int64_t r = 0; r < rows; r++) {
    float *dst = out + r * dp;
    if (attn_visible_keys(p, i0 + r) == 0) {
      memset(dst, 0, (size_t)dp * sizeof(float));
      if (lse) lse[r] = -INFINITY;
      continue;
    }
    const float l = s->state[r].l;
    for (int64_t c = 0; c < dp; c++) dst[c] = s->o[r * dp + c] / l * s->fs[c] + kv.v_mean[c];
    if (lse) {
      /* spec §2.7: the row constant tau q_i k_mean that smoothing K dropped comes back */
      double qk = 0;
      if (cfg->smooth_k)
        for (int64_t c = 0; c < dp; c++) qk += (double)x[r * dp + c] * (double)kv.k_mean[c];
      lse[r] = (float)(SAGE_LN2 * ((double)s->state[r].m + log2((double)l) - (double)cfg->sigma) +
                       (double)p->scale * qk);
    }
  }
}

/* -------------------------------------------------------------- driver */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

sparq_status attn_forward_sage(const attn_problem *p) {
  sage_config cfg;
  sparq_status st = sage_config_resolve(p, &cfg);
  if (st != SPARQ_OK) return st;
  const int64_t B = p->batch, Hq = p->q_heads, Hk = p->kv_heads, nq = p->q_len, nk = p->kv_len, dp = p->dp;
  sage_geom g;
  g.dp = dp;
  g.nq_pad = sage_round_up(nq, SAGE_BQ);
  g.nk_pad = sage_round_up(nk, SAGE_BK);
  g.nqb = (nq + SAGE_QBLOCK - 1) / SAGE_QBLOCK;
  g.tau_log2e = p->scale * SAGE_LOG2E;

  sage_buffers buf;
  memset(&buf, 0, sizeof buf);
  unsigned char *scratch = NULL;
  const size_t nkv = (size_t)(B * Hk), nqh = (size_t)(B * Hq), udp = (size_t)dp;
  buf.k_mean = alloc3(nkv, udp, 4, "sage k_mean", &st);
  buf.v_mean = alloc3(nkv, udp, 4, "sage v_mean", &st);
  buf.v_scale = alloc3(nkv, udp, 4, "sage v_scale", &st);
  buf.k_hat = alloc3(nkv, (size_t)g.nk_pad, udp, "sage K-hat", &st);
  buf.v_hat = alloc3(nkv, (size_t)g.nk_pad * udp, 2, "sage V-hat", &st);
  buf.k_corr = alloc3(nkv, (size_t)g.nk_pad, 4, "sage K-hat sums", &st);
  buf.k_scale = alloc3(nkv, (size_t)g.nk_pad, 4, "sage K scales", &st);
  buf.q_hat = alloc3(nqh, (size_t)g.nq_pad, udp, "sage Q-hat", &st);
  buf.q_scale = alloc3(nqh, (size_t)g.nq_pad, 4, "sage Q scales", &st);
  buf.q_delta = alloc3(nqh, (size_t)g.nq_pad, 4, "sage Q deltas", &st);
  if (cfg.smooth_q) {
    buf.q_mean = alloc3(nqh, (size_t)g.nqb, udp * 4, "sage q_mean", &st);
    buf.ds = alloc3(nqh, (size_t)g.nqb, (size_t)g.nk_pad * 4, "sage delta-S", &st);
    buf.ds_log2 = alloc3(nqh, (size_t)g.nqb, (size_t)g.nk_pad * 4, "sage delta-S (log2)", &st);
  }
  /* per-thread scratch, carved before the parallel regions so a failed
   * allocation is an ordinary error return */
  const int nthreads = omp_get_max_threads();
  const int64_t nmax = max64(nq, nk), gmax = max64(nmax, 8 * ((nmax + 31) / 32));
  const size_t prep_bytes = (size_t)gmax * 4 + (size_t)(nmax * dp) + (size_t)(nk * dp) * 4 + 4 * SPARQ_ALIGN;
  const size_t item_bytes = scratch_bytes(dp);
  const size_t per_thread = ((prep_bytes > item_bytes ? prep_bytes : item_bytes) + SPARQ_ALIGN - 1) / SPARQ_ALIGN * SPARQ_ALIGN;
  scratch = alloc3((size_t)nthreads, per_thread, 1, "sage scratch", &st);
  if (st != SPARQ_OK) goto done;

#pragma omp parallel num_threads(nthreads)
  {
    sparq_thread_set_ftz();
    unsigned char *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
    float *amax = (float *)mine;
    int8_t *rows = (int8_t *)(mine + ((size_t)gmax * 4 + SPARQ_ALIGN) / SPARQ_ALIGN * SPARQ_ALIGN);
    float *tmp = (float *)((unsigned char *)rows + ((size_t)(nmax * dp) + SPARQ_ALIGN) / SPARQ_ALIGN * SPARQ_ALIGN);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < (int64_t)nkv; i++) {
      sage_kv kv = kv_at(&buf, &g, i);
      prep_kv_head(p, &cfg, &g, &kv, i / Hk, i % Hk, amax, rows, tmp);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < (int64_t)nqh; i++) {
      const int64_t b = i / Hq, h = i % Hq;
      sage_kv kv = kv_at(&buf, &g, b * Hk + attn_kv_head(p, h));
      sage_q q = q_at(&buf, &g, i);
      prep_q_head(p, &cfg, &g, &kv, &q, b, h, amax, rows);
    }
  }

  if (p->opts->dump_dir) {
    sage_kv *kvs = sparq_alloc(nkv * sizeof(sage_kv), "sage dump views");
    sage_q *qs = sparq_alloc(nqh * sizeof(sage_q), "sage dump views");
    if (!kvs || !qs) st = SPARQ_ERR_NOMEM;
    else {
      for (size_t i = 0; i < nkv; i++) kvs[i] = kv_at(&buf, &g, (int64_t)i);
      for (size_t i = 0; i < nqh; i++) qs[i] = q_at(&buf, &g, (int64_t)i);
      st = sage_dump(p, &cfg, qs, kvs, g.nq_pad, g.nk_pad, g.nqb);
    }
    sparq_free(kvs);
    sparq_free(qs);
    if (st != SPARQ_OK) goto done;
  }

  sage_run run;
  run.p = p, run.cfg = &cfg, run.g = &g, run.buf = &buf, run.k = pick_kernels(&cfg);
  for (int c = 0; c < 256; c++) {
    float x = sparq_e4m3_to_f32((uint8_t)c);
    run.e4m3_lut[c] = cfg.pv == SAGE_PV_BF16 ? sparq_bf16_from_f32(x) : sparq_f16_from_f32(x);
  }
  const int64_t items = B * Hq * ((nq + SAGE_BQ - 1) / SAGE_BQ);
#pragma omp parallel num_threads(nthreads)
  {
    sparq_thread_set_ftz();
    const sage_scratch s = scratch_at(scratch + (size_t)omp_get_thread_num() * per_thread, dp);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < items; i++) run_item(&run, &s, i);
  }
done:
  sparq_free(scratch);
  buffers_free(&buf);
  return st;
}
