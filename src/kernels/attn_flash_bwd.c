/* flash_f32 backward, FlashAttention-2 style: the probabilities are
 * recomputed tile by tile from the forward's LSE, never stored whole.
 *   P = 2^(S2 - lse2)   with S2 = (scale log2(e) Q) K^T, lse2 = log2(e) lse
 *   D_i = dO_i . O_i,   dP = dO V^T,   dS = P o (dP - D)
 *   dV = P^T dO,   dK = scale dS^T Q,   dQ = scale dS K
 * Pass A: one work item per (batch, kv head, key block) owns dK and dV of its
 * 64 keys and loops over every query head of the group and every query block
 * in a fixed order. Pass B: one item per (batch, query head, query block) owns
 * dQ of its rows. No output element is shared between items, so there are no
 * atomics and the result is the same for any thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/attn_flash.h"
#include "kernels/attn_fp32.h"
#include "sparq/base.h"

enum {
  BQ = FLASH_BQ,                                          /* query rows per block, a multiple of FLASH_RG */
  KR = (FLASH_BK + FLASH_RG - 1) / FLASH_RG * FLASH_RG    /* key rows of a pass-A tile, padded to FLASH_RG */
};

static const flash_tiles *pick_tiles(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  switch (sparq_isa_active()) {
    case SPARQ_ISA_AVX512: return &flash_tiles_avx512;
    case SPARQ_ISA_AVX2: return &flash_tiles_avx2;
    default: break;
  }
#endif
  return &flash_tiles_scalar;
}

typedef struct bwd_ctx {
  const attn_grad *g;
  const flash_tiles *t;
  const float *kt, *vt; /* packed K^T and V^T blocks per (batch, kv head) */
  const float *dvec;    /* D per query row, [B][Hq][Nq] */
  const float *lse2;    /* log2(e) lse per query row */
  int64_t nkb;
} bwd_ctx;

/* Per-thread scratch of both passes. */
typedef struct bwd_scratch {
  float *qs, *dos;      /* [BQ][dp]: scaled Q block and dO block, zero padding rows */
  float *pt, *dst;      /* [KR][BQ]: P^T and dS^T of one query block (pass A) */
  float *acc1, *acc2;   /* pass A: dK, dV [KR][dp]; pass B: dQ [BQ][dp] in acc1 */
  float *s, *dp, *p;    /* [FLASH_RG][FLASH_BK] tiles */
} bwd_scratch;

static size_t scratch_floats(int64_t dp) {
  const int64_t rows = BQ > KR ? BQ : KR;
  return (size_t)(2 * BQ * dp + 2 * KR * BQ + 2 * rows * dp + 3 * FLASH_RG * FLASH_BK);
}

static bwd_scratch scratch_at(float *base, int64_t dp) {
  const int64_t rows = BQ > KR ? BQ : KR;
  bwd_scratch s;
  s.qs = base;
  s.dos = s.qs + BQ * dp;
  s.pt = s.dos + BQ * dp;
  s.dst = s.pt + KR * BQ;
  s.acc1 = s.dst + KR * BQ;
  s.acc2 = s.acc1 + rows * dp;
  s.s = s.acc2 + rows * dp;
  s.dp = s.s + FLASH_RG * FLASH_BK;
  s.p = s.dp + FLASH_RG * FLASH_BK;
  return s;
}

/* Copies query rows [q0, q0 + rows) of head (b, h) into the scratch: Q times
 * scale log2(e) exactly as the forward did, and dO; pads to a multiple of
 * FLASH_RG rows with zeros. Returns the padded row count. */
static int64_t load_query_block(const attn_problem *p, const float *dout, bwd_scratch *s, int64_t b, int64_t h,
                                int64_t q0, int64_t rows) {
  const int64_t dp = p->dp, padded = (rows + FLASH_RG - 1) / FLASH_RG * FLASH_RG;
  const float qscale = p->scale * FLASH_LOG2E;
  const float *q = attn_q_at(p, b, h) + q0 * dp;
  const float *d = dout + ((b * p->q_heads + h) * p->q_len + q0) * dp;
  for (int64_t i = 0; i < rows * dp; i++) s->qs[i] = q[i] * qscale;
  memcpy(s->dos, d, (size_t)(rows * dp) * sizeof(float));
  memset(s->qs + rows * dp, 0, (size_t)((padded - rows) * dp) * sizeof(float));
  memset(s->dos + rows * dp, 0, (size_t)((padded - rows) * dp) * sizeof(float));
  return padded;
}

/* P and dS of rows r0 .. r0 + 5 of the loaded block against key block kb. */
static void tile_grad(const bwd_ctx *c, bwd_scratch *s, int64_t b, int64_t h, int64_t hk, int64_t q0, int64_t rows,
                      int64_t r0, int64_t kb) {
  const attn_problem *p = &c->g->p;
  const int64_t dp = p->dp, key0 = kb * FLASH_BK;
  const size_t blk = (size_t)(((b * p->kv_heads + hk) * c->nkb + kb) * dp * FLASH_BK);
  c->t->abt(s->qs + r0 * dp, dp, c->kt + blk, dp, s->s);
  c->t->abt(s->dos + r0 * dp, dp, c->vt + blk, dp, s->dp);
  float lse2[FLASH_RG], dvec[FLASH_RG];
  int lim[FLASH_RG];
  const int64_t row0 = (b * p->q_heads + h) * p->q_len + q0;
  for (int r = 0; r < FLASH_RG; r++) {
    const int64_t i = r0 + r;
    const int64_t vis = i < rows ? attn_visible_keys(p, q0 + i) : 0;
    lim[r] = vis <= key0 ? 0 : vis - key0 >= FLASH_BK ? FLASH_BK : (int)(vis - key0);
    lse2[r] = i < rows ? c->lse2[row0 + i] : 0.0f;
    dvec[r] = i < rows ? c->dvec[row0 + i] : 0.0f;
  }
  c->t->grad(s->s, s->dp, s->p, lse2, dvec, lim);
}

/* Pass A: dK and dV of key block kb of kv head (b, hk). */
static void pass_a(const bwd_ctx *c, bwd_scratch *s, int64_t b, int64_t hk, int64_t kb) {
  const attn_grad *g = c->g;
  const attn_problem *p = &g->p;
  const int64_t dp = p->dp, key0 = kb * FLASH_BK, group = p->q_heads / p->kv_heads;
  const int64_t nk = p->kv_len - key0 < FLASH_BK ? p->kv_len - key0 : FLASH_BK;
  memset(s->acc1, 0, (size_t)(KR * dp) * sizeof(float));
  memset(s->acc2, 0, (size_t)(KR * dp) * sizeof(float));
  /* key rows past the block stay zero so the padded tile rows add nothing */
  memset(s->pt + FLASH_BK * BQ, 0, (size_t)((KR - FLASH_BK) * BQ) * sizeof(float));
  memset(s->dst + FLASH_BK * BQ, 0, (size_t)((KR - FLASH_BK) * BQ) * sizeof(float));
  for (int64_t h = hk * group; h < (hk + 1) * group; h++)
    for (int64_t q0 = 0; q0 < p->q_len; q0 += BQ) {
      const int64_t rows = p->q_len - q0 < BQ ? p->q_len - q0 : BQ;
      /* visibility grows with the row, so the last row decides whether any row sees this block */
      if (attn_visible_keys(p, q0 + rows - 1) <= key0) continue;
      const int64_t padded = load_query_block(p, g->dout, s, b, h, q0, rows);
      for (int64_t r0 = 0; r0 < padded; r0 += FLASH_RG) {
        tile_grad(c, s, b, h, hk, q0, rows, r0, kb);
        for (int r = 0; r < FLASH_RG; r++)
          for (int j = 0; j < FLASH_BK; j++) {
            s->pt[j * BQ + r0 + r] = s->p[r * FLASH_BK + j];
            s->dst[j * BQ + r0 + r] = s->s[r * FLASH_BK + j];
          }
      }
      for (int64_t j0 = 0; j0 < KR; j0 += FLASH_RG) {
        c->t->pv(s->dst + j0 * BQ, BQ, s->qs, dp, padded, s->acc1 + j0 * dp, dp, dp);
        c->t->pv(s->pt + j0 * BQ, BQ, s->dos, dp, padded, s->acc2 + j0 * dp, dp, dp);
      }
    }
  /* acc1 summed dS^T (scale log2(e) Q): ln 2 turns it into scale dS^T Q */
  const size_t base = (size_t)(((b * p->kv_heads + hk) * p->kv_len + key0) * dp);
  for (int64_t j = 0; j < nk; j++)
    for (int64_t col = 0; col < dp; col++) {
      g->dk[base + (size_t)(j * dp + col)] = s->acc1[j * dp + col] * FLASH_LN2;
      g->dv[base + (size_t)(j * dp + col)] = s->acc2[j * dp + col];
    }
}

/* Pass B: dQ of query rows [q0, q0 + BQ) of head (b, h). */
static void pass_b(const bwd_ctx *c, bwd_scratch *s, int64_t b, int64_t h, int64_t q0) {
  const attn_grad *g = c->g;
  const attn_problem *p = &g->p;
  const int64_t dp = p->dp, hk = attn_kv_head(p, h);
  const int64_t rows = p->q_len - q0 < BQ ? p->q_len - q0 : BQ;
  const int64_t padded = load_query_block(p, g->dout, s, b, h, q0, rows);
  memset(s->acc1, 0, (size_t)(padded * dp) * sizeof(float));
  const float *k = attn_k_at(p, b, hk);
  for (int64_t r0 = 0; r0 < padded; r0 += FLASH_RG) {
    const int64_t last = r0 + FLASH_RG - 1 < rows ? r0 + FLASH_RG - 1 : rows - 1;
    const int64_t vis = attn_visible_keys(p, q0 + last);
    for (int64_t kb = 0; kb * FLASH_BK < vis; kb++) {
      const int64_t key0 = kb * FLASH_BK, nk = vis - key0 < FLASH_BK ? vis - key0 : FLASH_BK;
      tile_grad(c, s, b, h, hk, q0, rows, r0, kb);
      c->t->pv(s->s, FLASH_BK, k + key0 * dp, dp, nk, s->acc1 + r0 * dp, dp, dp);
    }
  }
  float *dq = g->dq + ((b * p->q_heads + h) * p->q_len + q0) * dp;
  for (int64_t i = 0; i < rows * dp; i++) dq[i] = s->acc1[i] * p->scale;
}

sparq_status attn_backward_flash_f32(const attn_grad *g) {
  const attn_problem *p = &g->p;
  const int64_t dp = p->dp, nkb = (p->kv_len + FLASH_BK - 1) / FLASH_BK, heads = p->batch * p->kv_heads;
  const int64_t qrows = p->batch * p->q_heads * p->q_len;
  const int threads = omp_get_max_threads();
  const size_t packed = (size_t)(heads * nkb * dp * FLASH_BK);
  float *kt = sparq_alloc(2 * packed * sizeof(float), "flash_f32 backward packed K, V");
  float *rowdata = sparq_alloc((size_t)(2 * qrows) * sizeof(float), "flash_f32 backward D, LSE");
  float *scratch = sparq_alloc((size_t)threads * scratch_floats(dp) * sizeof(float), "flash_f32 backward scratch");
  if (!kt || !rowdata || !scratch) {
    sparq_free(kt);
    sparq_free(rowdata);
    sparq_free(scratch);
    return SPARQ_ERR_NOMEM;
  }
  bwd_ctx c = {.g = g, .t = pick_tiles(), .kt = kt, .vt = kt + packed, .dvec = rowdata, .lse2 = rowdata + qrows,
               .nkb = nkb};
  float *dvec = rowdata, *lse2 = rowdata + qrows;
  const int64_t nqb = (p->q_len + BQ - 1) / BQ;
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t x = 0; x < heads * nkb; x++) {
      const int64_t head = x / nkb, kb = x % nkb;
      const int64_t n = p->kv_len - kb * FLASH_BK < FLASH_BK ? p->kv_len - kb * FLASH_BK : FLASH_BK;
      const size_t src = (size_t)((head * p->kv_len + kb * FLASH_BK) * dp), dst = (size_t)(x * dp * FLASH_BK);
      flash_pack_kt(p->k + src, n, dp, kt + dst);
      flash_pack_kt(p->v + src, n, dp, kt + packed + dst);
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < qrows; r++) {
      const float *o = g->o + r * dp, *d = g->dout + r * dp;
      double acc = 0;
      for (int64_t col = 0; col < p->head_dim; col++) acc += (double)o[col] * (double)d[col];
      dvec[r] = (float)acc;
      lse2[r] = g->lse[r] * FLASH_LOG2E;
    }
    bwd_scratch s = scratch_at(scratch + (size_t)omp_get_thread_num() * scratch_floats(dp), dp);
#pragma omp for schedule(dynamic, 1)
    for (int64_t x = 0; x < heads * nkb; x++) pass_a(&c, &s, x / nkb / p->kv_heads, x / nkb % p->kv_heads, x % nkb);
#pragma omp for schedule(dynamic, 1)
    for (int64_t x = 0; x < p->batch * p->q_heads * nqb; x++) {
      const int64_t bh = x / nqb, qb = nqb - 1 - x % nqb;
      pass_b(&c, &s, bh / p->q_heads, bh % p->q_heads, qb * BQ);
    }
  }
  sparq_free(kt);
  sparq_free(rowdata);
  sparq_free(scratch);
  return SPARQ_OK;
}
