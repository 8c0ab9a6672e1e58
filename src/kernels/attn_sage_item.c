/* Sage work items: one (batch, head, block of SAGE_BQ query rows)
 * each, run start to finish by one thread: for each visible key block, the
 * QK + softmax tiles of 4 rows, then the block's PV into FP32 O per the
 * accumulation mode, then O / l, dV, v_mean and the LSE. */
#include <math.h>
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"

/* The scratch of one thread; with base NULL it only counts the bytes. */
static size_t carve_scratch(unsigned char *base, int64_t dp, sage_scratch *s) {
  size_t at = 0;
  s->p = sage_take(base, &at, (size_t)SAGE_P_ROWS * SAGE_BK * 4);
  s->o = (float *)sage_take(base, &at, (size_t)SAGE_P_ROWS * (size_t)dp * 4);
  s->alpha = (float *)sage_take(base, &at, SAGE_P_ROWS * 4);
  s->fs = (float *)sage_take(base, &at, (size_t)dp * 4);
  s->state = (sage_row_state *)sage_take(base, &at, SAGE_P_ROWS * sizeof(sage_row_state));
  return at;
}

size_t sage_scratch_bytes(int64_t dp) {
  sage_scratch s;
  return carve_scratch(NULL, dp, &s);
}

sage_scratch sage_scratch_at(unsigned char *base, int64_t dp) {
  sage_scratch s;
  carve_scratch(base, dp, &s);
  return s;
}

sage_p_format sage_p_format_of(const sage_config *cfg) {
  switch (cfg->round) {
    case SAGE_ROUND_BF16: return SAGE_P_BF16;
    case SAGE_ROUND_F16: return SAGE_P_F16;
    case SAGE_ROUND_U8: return SAGE_P_U8;
    default: return cfg->pv == SAGE_PV_BF16 ? SAGE_P_E4M3_BF16 : SAGE_P_E4M3_F16;
  }
}

size_t sage_p_bytes(sage_p_format f) { return f == SAGE_P_F32 ? 4 : f == SAGE_P_U8 ? 1 : 2; }

/* PV of key block kb for rows4 rows: R = P-hat V-hat into O per the
 * accumulation mode (spec §2.6); the BF16 path sums per 4 rows only the key
 * pairs that some of them see (npairs). */
static void pv_block(const sage_run *run, const sage_scratch *s, const sage_kv *kv, int64_t kb, int64_t rows4,
                     const uint8_t *npairs) {
  const int64_t dp = run->g->dp;
  const size_t voff = (size_t)(kb * SAGE_BK * dp);
  switch (run->cfg->pv) {
    case SAGE_PV_F16: run->k.pv_f16(s->p, (const uint16_t *)kv->v_hat + voff, rows4, dp, s->o, s->alpha); break;
    case SAGE_PV_U8: run->k.pv_u8(s->p, (const int8_t *)kv->v_hat + voff, rows4, dp, s->o, s->alpha); break;
    case SAGE_PV_BF16:
      run->k.pv_bf16(s->p, (const uint16_t *)kv->v_hat + voff, rows4, dp, s->o, s->alpha, run->cfg->accum, npairs);
      break;
  }
}

void sage_run_item(const sage_run *run, const sage_scratch *s, int64_t item) {
  const attn_problem *p = run->p;
  const sage_config *cfg = run->cfg;
  const sage_geom *g = run->g;
  const int64_t dp = g->dp, nqt = (p->q_len + SAGE_BQ - 1) / SAGE_BQ;
  const int64_t b = item / (p->q_heads * nqt), h = (item / nqt) % p->q_heads, i0 = (item % nqt) * SAGE_BQ;
  const int64_t rows = p->q_len - i0 < SAGE_BQ ? p->q_len - i0 : SAGE_BQ, rows4 = sage_round_up(rows, SAGE_QK_ROWS);
  const int64_t kv_idx = b * p->kv_heads + attn_kv_head(p, h);
  const sage_kv kv = sage_kv_at(run->buf, g, kv_idx);
  const sage_q q = sage_q_at(run->buf, g, b * p->q_heads + h);
  float *out = attn_o_at(p, b, h) + i0 * dp;
  float *lse = p->lse ? p->lse + (b * p->q_heads + h) * p->q_len + i0 : NULL;

  /* visible keys grow with the row, so the last row bounds the item */
  const int64_t kv_end = attn_visible_keys(p, i0 + rows - 1);
  const int64_t nkb = (kv_end + SAGE_BK - 1) / SAGE_BK;
  for (int64_t r = 0; r < rows4; r++) s->state[r].m = -INFINITY, s->state[r].l = 0.0f;
  memset(s->o, 0, (size_t)(rows4 * dp) * sizeof(float));

  const sage_p_format fmt = sage_p_format_of(cfg);
  const float u8_scale = cfg->round == SAGE_ROUND_U8 ? 255.0f / exp2f(cfg->sigma) : 0.0f;
  const bool refine = kv.k_lo && *kv.k_fine && sage_refine_wanted(cfg, p->scale, &q, &kv);
  const int32_t *k_corr = refine ? kv.k_corr_fine : kv.k_corr;
  const float *k_scale = refine ? kv.k_scale_fine : kv.k_scale;
  uint8_t npairs[SAGE_P_ROWS / SAGE_QK_ROWS];
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
      t.k_lo = refine ? kv.k_lo + key0 * dp : NULL;
      t.k_corr = k_corr + key0;
      t.k_scale = k_scale + key0;
      t.dp = dp;
      t.row0 = row0;
      t.key0 = key0;
      t.kv_len = p->kv_len;
      t.causal = p->causal;
      t.causal_offset = p->causal_offset;
      t.limit = NULL;
      t.masked = key0 + SAGE_BK > p->kv_len || (p->causal && key0 + SAGE_BK - 1 > row0 + p->causal_offset);
      t.sigma = cfg->sigma;
      t.fmt = fmt;
      t.u8_scale = u8_scale;
      t.p = (char *)s->p + (size_t)rt * SAGE_BK * sage_p_bytes(fmt);
      t.state = s->state + rt;
      t.alpha = s->alpha + rt;
      run->k.qk(&t);
      npairs[rt / SAGE_QK_ROWS] = (uint8_t)(t.masked ? (sage_tile_key_end(&t) + 1) / 2 : SAGE_BK / 2);
    }
    pv_block(run, s, &kv, kb, rows4, npairs);
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

