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

#include "base/thread_scratch.h"
#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"

/* ------------------------------------------------------------ buffers */

/* Every buffer of a call is carved (sage_take) out of one block kept per
 * calling thread (base/thread_scratch.h): layout() runs once to size the
 * block (base NULL) and once to place the buffers. */
typedef struct carver {
  unsigned char *base;
  size_t at;
  bool overflow;
} carver;

/* a * b * e bytes; past SIZE_MAX / 4 the sizing pass records an overflow
 * (so no sum of pieces can wrap) */
static void *take(carver *c, size_t a, size_t b, size_t e) {
  size_t n;
  if (!sparq_size_mul(a, b, &n) || !sparq_size_mul(n, e, &n) || n > SIZE_MAX / 4 || c->at > SIZE_MAX / 4) {
    c->overflow = true;
    return NULL;
  }
  return sage_take(c->base, &c->at, n);
}

/* Calls above this keep no block: their page faults are small next to
 * their O(N^2) work, and a user's one huge call should not pin its memory. */
#define SAGE_SCRATCH_KEEP (64u << 20)

sage_kv sage_kv_at(const sage_buffers *b, const sage_geom *g, int64_t idx) {
  sage_kv kv;
  const int64_t dp = g->dp, nkp = g->nk_pad;
  kv.k_mean = b->k_mean + idx * dp;
  kv.k_hat = b->k_hat + idx * nkp * dp;
  kv.k_corr = b->k_corr + idx * nkp;
  kv.k_scale = b->k_scale + idx * nkp;
  kv.v_mean = b->v_mean + idx * dp;
  kv.v_scale = b->v_scale + idx * dp;
  kv.v_hat = (char *)b->v_hat + idx * nkp * dp * 2; /* sized for 2-byte elements either way */
  kv.k_lo = b->k_lo ? b->k_lo + idx * nkp * dp : NULL;
  kv.k_corr_fine = b->k_corr_fine ? b->k_corr_fine + idx * nkp : NULL;
  kv.k_scale_fine = b->k_scale_fine ? b->k_scale_fine + idx * nkp : NULL;
  kv.k_step_max = b->k_step_max ? b->k_step_max + idx : NULL;
  kv.k_fine = b->k_fine ? b->k_fine + idx : NULL;
  return kv;
}

sage_q sage_q_at(const sage_buffers *b, const sage_geom *g, int64_t idx) {
  sage_q q;
  const int64_t dp = g->dp, nqp = g->nq_pad;
  q.q_hat = b->q_hat + idx * nqp * dp;
  q.q_scale = b->q_scale + idx * nqp;
  q.q_delta = b->q_delta + idx * nqp;
  q.q_mean = b->q_mean ? b->q_mean + idx * g->nqb * dp : NULL;
  q.ds = b->ds ? b->ds + idx * g->nqb * g->nk_pad : NULL;
  q.ds_log2 = b->ds_log2 ? b->ds_log2 + idx * g->nqb * g->nk_pad : NULL;
  q.q_norm_max = b->q_norm_max ? b->q_norm_max + idx : NULL;
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
  if (kv->k_lo) { /* refine_k: K-lo waits for the q heads' norms (refine_pass) */
    float most = 0.0f;
    for (int64_t j = 0; j < nk; j++) most = kv->k_scale[j] > most ? kv->k_scale[j] : most; /* NaN rows skipped */
    *kv->k_step_max = most, *kv->k_fine = 0;
  }
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
  /* a local pointer: byte stores may alias q, which would be reloaded per byte */
  uint8_t *restrict q_hat = q->q_hat;
  for (int64_t i = 0; i < nq * dp; i++) q_hat[i] = (uint8_t)(rows[i] + 128);
  memset(q_hat + nq * dp, 128, (size_t)((g->nq_pad - nq) * dp));
  for (int64_t t = 0; t < nq; t++) q->q_scale[t] = q->q_delta[t] * g->tau_log2e;
  for (int64_t t = nq; t < g->nq_pad; t++) q->q_scale[t] = 0.0f, q->q_delta[t] = 0.0f;
  if (q->q_norm_max) { /* refine_k's |q|_2 bound: 16 independent float sums per row vectorize */
    float most = 0.0f;
    for (int64_t t = 0; t < nq; t++) {
      float lane[16] = {0};
      for (int64_t c = 0; c < dp; c += 16) /* dp is a multiple of ATTN_DIM_ALIGN (32) */
        for (int i = 0; i < 16; i++) lane[i] += x[t * dp + c + i] * x[t * dp + c + i];
      float ss = 0.0f;
      for (int i = 0; i < 16; i++) ss += lane[i];
      if (ss > most) most = ss; /* a NaN row compares false; an inf row counts (and refines) */
    }
    *q->q_norm_max = sqrtf(most);
  }
}

/* refine_k: whether q head index i (batch-major) refines its kv head. */
static bool q_head_refines(const sage_run *run, int64_t i) {
  const attn_problem *p = run->p;
  const int64_t b = i / p->q_heads, h = i % p->q_heads;
  const sage_kv kv = sage_kv_at(run->buf, run->g, b * p->kv_heads + attn_kv_head(p, h));
  const sage_q q = sage_q_at(run->buf, run->g, i);
  return sage_refine_wanted(run->cfg, p->scale, &q, &kv);
}

/* refine_k: K-lo of kv head idx when one of its q heads refines. */
static void refine_pass(const sage_run *run, int64_t idx) {
  const attn_problem *p = run->p;
  const int64_t b = idx / p->kv_heads, hk = idx % p->kv_heads, group = p->q_heads / p->kv_heads;
  bool need = false;
  for (int64_t h = hk * group; h < (hk + 1) * group && !need; h++) need = q_head_refines(run, b * p->q_heads + h);
  if (!need) return;
  sage_kv kv = sage_kv_at(run->buf, run->g, idx);
  sage_prepare_k_residual(attn_k_at(p, b, hk), run->cfg->smooth_k ? kv.k_mean : NULL, p->kv_len, run->g->nk_pad,
                          run->g->dp, &kv);
  *kv.k_fine = 1;
}

/* ------------------------------------------------------------- kernels */

sage_kernels sage_pick_kernels(const sage_config *cfg) {
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

/* Pre-pass of q head index i (batch-major). */
static void prep_q_index(const sage_run *run, int64_t i, float *amax, int8_t *rows) {
  const attn_problem *p = run->p;
  const int64_t b = i / p->q_heads, h = i % p->q_heads;
  sage_kv kv = sage_kv_at(run->buf, run->g, b * p->kv_heads + attn_kv_head(p, h));
  sage_q q = sage_q_at(run->buf, run->g, i);
  prep_q_head(p, run->cfg, run->g, &kv, &q, b, h, amax, rows);
}

/* The pre-pass (prep) and/or the work items (items) in one parallel region. */
static void sage_stage_run(const sage_run *run, unsigned char *scratch, size_t per_thread, int nthreads, int64_t gmax,
                           int64_t nmax, bool prep, bool items) {
  const attn_problem *p = run->p;
  const sage_geom *g = run->g;
  const int64_t Hq = p->q_heads, Hk = p->kv_heads, dp = g->dp;
  const int64_t nkv = p->batch * Hk, nqh = p->batch * Hq;
  const int64_t nitems = nqh * ((p->q_len + SAGE_BQ - 1) / SAGE_BQ);
  /* without smooth Q a q head needs nothing from its kv head: one loop */
  const bool joint = !run->cfg->smooth_q;
#pragma omp parallel num_threads(nthreads)
  {
    sparq_thread_set_ftz();
    unsigned char *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
    if (prep) {
      float *amax = (float *)mine;
      int8_t *rows = (int8_t *)(mine + ((size_t)gmax * 4 + SPARQ_ALIGN) / SPARQ_ALIGN * SPARQ_ALIGN);
      float *tmp = (float *)((unsigned char *)rows + ((size_t)(nmax * dp) + SPARQ_ALIGN) / SPARQ_ALIGN * SPARQ_ALIGN);
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < nkv + (joint ? nqh : 0); i++) {
        if (i < nkv) {
          sage_kv kv = sage_kv_at(run->buf, g, i);
          prep_kv_head(p, run->cfg, g, &kv, i / Hk, i % Hk, amax, rows, tmp);
        } else {
          prep_q_index(run, i - nkv, amax, rows);
        }
      }
      if (!joint) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < nqh; i++) prep_q_index(run, i, amax, rows);
      }
      if (run->buf->k_lo) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < nkv; i++) refine_pass(run, i);
      }
    }
    if (items) {
      const sage_scratch s = sage_scratch_at(mine, dp);
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < nitems; i++) sage_run_item(run, &s, i);
    }
  }
}

static sparq_status dump_all(const attn_problem *p, const sage_config *cfg, const sage_buffers *buf,
                             const sage_geom *g) {
  const size_t nkv = (size_t)(p->batch * p->kv_heads), nqh = (size_t)(p->batch * p->q_heads);
  sage_kv *kvs = sparq_alloc(nkv * sizeof(sage_kv), "sage dump views");
  sage_q *qs = sparq_alloc(nqh * sizeof(sage_q), "sage dump views");
  sparq_status st = SPARQ_ERR_NOMEM;
  if (kvs && qs) {
    for (size_t i = 0; i < nkv; i++) kvs[i] = sage_kv_at(buf, g, (int64_t)i);
    for (size_t i = 0; i < nqh; i++) qs[i] = sage_q_at(buf, g, (int64_t)i);
    st = sage_dump(p, cfg, qs, kvs, g->nq_pad, g->nk_pad, g->nqb);
  }
  sparq_free(kvs);
  sparq_free(qs);
  return st;
}

/* The call's buffers (see carver). */
static void layout(carver *c, const sage_config *cfg, const sage_geom *g, size_t nkv, size_t nqh, size_t nthreads,
                   size_t per_thread, sage_buffers *buf, unsigned char **scratch) {
  const size_t dp = (size_t)g->dp, nkp = (size_t)g->nk_pad, nqp = (size_t)g->nq_pad, nqb = (size_t)g->nqb;
  memset(buf, 0, sizeof *buf);
  buf->k_mean = take(c, nkv, dp, 4);
  buf->v_mean = take(c, nkv, dp, 4);
  buf->v_scale = take(c, nkv, dp, 4);
  buf->k_hat = take(c, nkv, nkp, dp);
  buf->v_hat = take(c, nkv, nkp * dp, 2);
  buf->k_corr = take(c, nkv, nkp, 4);
  buf->k_scale = take(c, nkv, nkp, 4);
  buf->q_hat = take(c, nqh, nqp, dp);
  buf->q_scale = take(c, nqh, nqp, 4);
  buf->q_delta = take(c, nqh, nqp, 4);
  if (cfg->refine != SPARQ_ATTN_OFF) {
    buf->k_lo = take(c, nkv, nkp, dp);
    buf->k_corr_fine = take(c, nkv, nkp, 4);
    buf->k_scale_fine = take(c, nkv, nkp, 4);
    buf->k_step_max = take(c, nkv, 1, 4);
    buf->k_fine = take(c, nkv, 1, 1);
    buf->q_norm_max = take(c, nqh, 1, 4);
  }
  if (cfg->smooth_q) {
    buf->q_mean = take(c, nqh, nqb, dp * 4);
    buf->ds = take(c, nqh, nqb, nkp * 4);
    buf->ds_log2 = take(c, nqh, nqb, nkp * 4);
  }
  *scratch = take(c, nthreads, per_thread, 1);
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

  /* per-thread scratch of the pre-pass and of the items */
  const int nthreads = omp_get_max_threads();
  const int64_t nmax = max64(nq, nk), gmax = max64(nmax, 8 * ((nmax + 31) / 32));
  const size_t prep_bytes = (size_t)gmax * 4 + (size_t)(nmax * dp) + (size_t)(nk * dp) * 4 + 4 * SPARQ_ALIGN;
  const size_t item_bytes = sage_scratch_bytes(dp);
  const size_t per_thread = ((prep_bytes > item_bytes ? prep_bytes : item_bytes) + SPARQ_ALIGN - 1) / SPARQ_ALIGN * SPARQ_ALIGN;

  sage_buffers buf;
  unsigned char *scratch = NULL;
  carver c = {NULL, 0, false};
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      if (c.overflow) return sparq_fail(SPARQ_ERR_NOMEM, "attn_forward_sage: the buffers' size overflows");
      c.base = thread_scratch(SCRATCH_SAGE, c.at, "attn_forward_sage buffers");
      if (!c.base) return SPARQ_ERR_NOMEM;
      c.at = 0;
    }
    layout(&c, &cfg, &g, (size_t)(B * Hk), (size_t)(B * Hq), (size_t)nthreads, per_thread, &buf, &scratch);
  }

  sage_run run;
  run.p = p, run.cfg = &cfg, run.g = &g, run.buf = &buf, run.k = sage_pick_kernels(&cfg);
  /* One parallel region for the pre-pass and the items: each extra barrier
   * or fork costs a scheduler time slice whenever the machine is shared.
   * The dump, which reports errors on the calling thread, splits it in two. */
  const bool dump = p->opts->dump_dir != NULL;
  sage_stage_run(&run, scratch, per_thread, nthreads, gmax, nmax, true, !dump);
  if (dump) {
    st = dump_all(p, &cfg, &buf, &g);
    if (st != SPARQ_OK) goto done;
    sage_stage_run(&run, scratch, per_thread, nthreads, gmax, nmax, false, true);
  }
done:
  thread_scratch_trim(SCRATCH_SAGE, SAGE_SCRATCH_KEEP);
  return st;
}

void sparq_attention_release_scratch(void) { thread_scratch_trim(SCRATCH_SAGE, 0); }
