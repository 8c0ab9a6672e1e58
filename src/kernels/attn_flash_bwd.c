/* flash_f32 backward, FlashAttention-2 style: the probabilities are
 * recomputed tile by tile from the forward's LSE, never stored whole.
 *   P = 2^(S2 - lse2)   with S2 = (scale log2(e) Q) K^T, lse2 = log2(e) lse
 *   D_i = dO_i . O_i,   dP = dO V^T,   dS = P o (dP - D)
 *   dV = P^T dO,   dK = scale dS^T Q,   dQ = scale dS K
 *
 * One work item is a (batch, kv head, chunk of key blocks). It owns dK and dV
 * of its keys and, for every query head of the group in turn, packs Q^T and
 * dO^T of that head once, then for each of its key blocks (64 keys) and each
 * query block (64 queries) the key block sees:
 *   - per 4 keys: S^T and dP^T tiles (4 x 64), P^T and dS^T by `grad`, and
 *     dV += P^T dO, dK += dS^T Q straight from the register tiles;
 *   - dQ += dS K for the 64 queries from the block's dS^T.
 * Five matrix products per block pair, nothing recomputed; on the diagonal
 * of a causal mask the zmm columns and rows no key sees are skipped.
 *
 * Q, K, V, O, dO are read and dQ, dK, dV written in place at the tensors'
 * strides (an NHD layout costs no copies). The first product into a group
 * of output rows writes it without reading, so the outputs are never zeroed
 * ahead, and while an item computes it prefetches the rows its thread's
 * next item reads (see flash_claim_ahead).
 *
 * dQ of a query accumulates over the key blocks in ascending order. With
 * one chunk per head (enough heads to keep every thread busy) it goes
 * straight into dq; with several chunks each item fills its own partial sum
 * and a last pass adds the chunks in order. The chunking depends on the
 * shape only and no output element is shared between items, so the result
 * is the same for any thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/attn_flash.h"
#include "kernels/attn_fp32.h"
#include "sparq/base.h"

enum {
  BB = FLASH_BB,   /* keys per key block, queries per query block */
  BR = FLASH_BR,   /* rows per register tile */
  MIN_ITEMS = 16,  /* fewer (batch, kv head) pairs than this: cut the keys into chunks */
  MIN_CHUNK = 4    /* key blocks per chunk at least: each chunk packs its query heads again */
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
  flash_pack_fn pack;
  attn_strides sq, sk;
  int64_t nqb, chunks;
  const int64_t *chunk_kb; /* [chunks + 1]: first key block of each chunk */
  float *part;             /* chunks > 1: [chunks][B Hq Nq][dp] dQ partial sums; else NULL */
} bwd_ctx;

/* Per-thread scratch. */
typedef struct bwd_scratch {
  float *qt, *dot;      /* [nqb][dp][64]: Q^T times scale log2(e), dO^T of the current head */
  float *lse2, *dvec;   /* [nqb 64]: log2(e) lse and D of its queries, 0 past q_len */
  float *s, *dpt, *p;   /* [BR][64] tiles: S^T, dP^T, P^T */
  float *dst;           /* [BB][64]: dS^T of the current key block x query block */
  /* Written yet? The first product into a row group of dK and dV (key
   * tiles of the item) or of dQ (query tiles of the head) initializes it,
   * so no pass zeroes the outputs ahead (which, on memory not in cache,
   * would stall on every line); groups never written are zeroed at the end. */
  unsigned char *key_done; /* [nkb BB / BR] */
  unsigned char *query_done; /* [nqb BB / BR] */
} bwd_scratch;

static size_t scratch_floats(int64_t dp, int64_t nqb, int64_t nkb) {
  const size_t n = (size_t)(2 * nqb * dp * 64 + 2 * nqb * 64 + 3 * BR * 64 + BB * 64 + (nkb + nqb) * (BB / BR) / 4 + 1);
  return (n + 15) / 16 * 16; /* threads' scratch on separate cache lines */
}

static bwd_scratch scratch_at(float *base, int64_t dp, int64_t nqb, int64_t nkb) {
  bwd_scratch s;
  s.qt = base;
  s.dot = s.qt + nqb * dp * 64;
  s.lse2 = s.dot + nqb * dp * 64;
  s.dvec = s.lse2 + nqb * 64;
  s.s = s.dvec + nqb * 64;
  s.dpt = s.s + BR * 64;
  s.p = s.dpt + BR * 64;
  s.dst = s.p + BR * 64;
  s.key_done = (unsigned char *)(s.dst + BB * 64);
  s.query_done = s.key_done + nkb * (BB / BR);
  return s;
}

/* The tensors of one (batch, query head, kv head) triple, rows at the strides. */
typedef struct head_view {
  const float *q, *dout, *k, *v;
  float *dq, *dk, *dv;
  int64_t ldq, ldd, ldk; /* row strides: q and dout; dq; k, v, dk and dv */
} head_view;

/* Key block [key0, key0 + nk) against query block qb ([q0, q0 + hi)). */
static void block_pair(const bwd_ctx *c, bwd_scratch *s, const head_view *hv, int64_t key0, int64_t nk,
                       int64_t qb, int64_t hi, flash_prefetch *pf) {
  const attn_problem *p = &c->g->p;
  const flash_tiles *t = c->t;
  const int64_t dp = p->dp, q0 = qb * BB, ldk = hv->ldk;
  const float *qt = s->qt + qb * dp * 64, *dot = s->dot + qb * dp * 64;
  const float *lse2 = s->lse2 + qb * 64, *dvec = s->dvec + qb * 64;
  for (int64_t j = 0; j < nk; j += BR) {
    const int R = nk - j < BR ? (int)(nk - j) : BR;
    int lo[BR];
    for (int r = 0; r < R; r++) {
      /* key kj is seen by query i iff kj <= i + causal_offset */
      const int64_t first = p->causal ? key0 + j + r - p->causal_offset - q0 : 0;
      lo[r] = first < 0 ? 0 : first > BB ? BB : (int)first;
    }
    if (lo[0] >= hi) continue; /* no query of the block sees these keys (lo grows with the key) */
    flash_prefetch_step(pf);
    const int c0 = lo[0] / 16;
    const int64_t row = (key0 + j) * ldk;
    t->abt(hv->k + row, ldk, qt, dp, R, c0, s->s);
    t->abt(hv->v + row, ldk, dot, dp, R, c0, s->dpt);
    t->grad(s->s, s->dpt, lse2, dvec, lo, (int)hi, R, c0, s->p, s->dst + j * 64);
    unsigned char *done = s->key_done + (key0 + j) / BR;
    t->pv(s->p, 64, 1, lo[0], hi, hv->dout + q0 * hv->ldq, hv->ldq, hv->dv + row, ldk, dp, R, !*done);
    t->pv(s->dst + j * 64, 64, 1, lo[0], hi, hv->q + q0 * hv->ldq, hv->ldq, hv->dk + row, ldk, dp, R, !*done);
    *done = 1;
  }
  /* dQ of the block's queries: each group of rows stops at the last key its
   * last row sees; rows of dS^T in that range were all written above */
  for (int64_t i = 0; i < hi; i += BR) {
    const int R = hi - i < BR ? (int)(hi - i) : BR;
    int64_t nkr = attn_visible_keys(p, q0 + i + R - 1) - key0;
    if (nkr > nk) nkr = nk;
    if (nkr <= 0) continue;
    unsigned char *done = s->query_done + (q0 + i) / BR;
    t->pv(s->dst + i, 1, 64, 0, nkr, hv->k + key0 * ldk, ldk, hv->dq + (q0 + i) * hv->ldd, hv->ldd, dp, R, !*done);
    *done = 1;
  }
}

/* Packs Q^T, dO^T, lse2 and D of query blocks [qb0, nqb) of head (b, h). */
static void load_head(const bwd_ctx *c, bwd_scratch *s, const head_view *hv, int64_t b, int64_t h, int64_t qb0) {
  const attn_grad *g = c->g;
  const attn_problem *p = &g->p;
  const int64_t dp = p->dp;
  const float qscale = p->scale * FLASH_LOG2E;
  const float *o = g->o + b * c->sq.batch + h * c->sq.head, *lse = g->lse + (b * p->q_heads + h) * p->q_len;
  for (int64_t qb = qb0; qb < c->nqb; qb++) {
    const int64_t q0 = qb * BB, n = p->q_len - q0 < BB ? p->q_len - q0 : BB;
    c->pack(hv->q + q0 * hv->ldq, hv->ldq, n, dp, qscale, s->qt + qb * dp * 64);
    c->pack(hv->dout + q0 * hv->ldq, hv->ldq, n, dp, 1.0f, s->dot + qb * dp * 64);
    c->t->dots(o + q0 * hv->ldq, hv->dout + q0 * hv->ldq, hv->ldq, n, dp, s->dvec + qb * 64);
    for (int64_t i = 0; i < 64; i++) s->lse2[qb * 64 + i] = i < n ? lse[q0 + i] * FLASH_LOG2E : 0.0f;
    for (int64_t i = n; i < 64; i++) s->dvec[qb * 64 + i] = 0.0f;
  }
}

enum { PREFETCH_MAX = 384 << 10 }; /* bytes: items that read more are not prefetched (nor worth it) */

/* Key tiles item x computes: the steps of its prefetch plan. */
static int64_t item_steps(const bwd_ctx *c, int64_t x) {
  const attn_problem *p = &c->g->p;
  const int64_t chunk = x % c->chunks, nq = p->q_len;
  int64_t pairs = 0;
  for (int64_t kb = c->chunk_kb[chunk]; kb < c->chunk_kb[chunk + 1]; kb++)
    for (int64_t qb = 0; qb < c->nqb; qb++)
      pairs += attn_visible_keys(p, (qb + 1) * BB < nq ? (qb + 1) * BB - 1 : nq - 1) > kb * BB;
  return pairs * (BB / BR) * (p->q_heads / p->kv_heads);
}

/* Plans the prefetch of the rows item x reads (for the first query head of
 * its group only) over `steps` key tiles. Its outputs are not prefetched:
 * the first product into each row group writes it without reading. */
static void plan_prefetch(const bwd_ctx *c, int64_t x, int64_t steps, flash_prefetch *pf) {
  const attn_grad *g = c->g;
  const attn_problem *p = &g->p;
  const int64_t chunk = x % c->chunks, b = x / c->chunks / p->kv_heads, hk = x / c->chunks % p->kv_heads;
  const int64_t h = hk * (p->q_heads / p->kv_heads), row = p->dp * (int64_t)sizeof(float);
  const int64_t key_lo = c->chunk_kb[chunk] * BB;
  const int64_t key_hi = c->chunk_kb[chunk + 1] * BB < p->kv_len ? c->chunk_kb[chunk + 1] * BB : p->kv_len;
  flash_prefetch_init(pf, row);
  if ((2 * (key_hi - key_lo) + 3 * p->q_len) * row > PREFETCH_MAX || key_hi <= key_lo) return;
  const int64_t kofs = b * c->sk.batch + hk * c->sk.head + key_lo * c->sk.row, qofs = b * c->sq.batch + h * c->sq.head;
  const int64_t ldk = c->sk.row * 4, ldq = c->sq.row * 4;
  flash_prefetch_add(pf, p->q + qofs, ldq, p->q_len, false);
  flash_prefetch_add(pf, g->dout + qofs, ldq, p->q_len, false);
  flash_prefetch_add(pf, g->o + qofs, ldq, p->q_len, false);
  flash_prefetch_add(pf, p->k + kofs, ldk, key_hi - key_lo, false);
  flash_prefetch_add(pf, p->v + kofs, ldk, key_hi - key_lo, false);
  pf->per_step = flash_prefetch_lines(pf) * 4 / (3 * (steps > 0 ? steps : 1)) + 1;
}

/* dK and dV of the keys of chunk `chunk` of kv head (b, hk), and their part of dQ. */
static void run_item(const bwd_ctx *c, bwd_scratch *s, int64_t b, int64_t hk, int64_t chunk, flash_prefetch *pf) {
  const attn_grad *g = c->g;
  const attn_problem *p = &g->p;
  const int64_t dp = p->dp, group = p->q_heads / p->kv_heads, nq = p->q_len;
  const int64_t kb0 = c->chunk_kb[chunk], kb1 = c->chunk_kb[chunk + 1];
  const int64_t key_lo = kb0 * BB, key_hi = kb1 * BB < p->kv_len ? kb1 * BB : p->kv_len;
  head_view hv;
  const int64_t kofs = b * c->sk.batch + hk * c->sk.head;
  hv.k = p->k + kofs, hv.v = p->v + kofs, hv.dk = g->dk + kofs, hv.dv = g->dv + kofs;
  hv.ldk = c->sk.row, hv.ldq = c->sq.row;
  memset(s->key_done + key_lo / BR, 0, (size_t)((key_hi - key_lo + BR - 1) / BR));
  for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
    const int64_t qofs = b * c->sq.batch + h * c->sq.head;
    hv.q = p->q + qofs, hv.dout = g->dout + qofs;
    if (c->part) {
      hv.dq = c->part + ((chunk * p->batch + b) * p->q_heads + h) * nq * dp;
      hv.ldd = dp;
    } else {
      hv.dq = g->dq + qofs;
      hv.ldd = c->sq.row;
    }
    memset(s->query_done, 0, (size_t)((nq + BR - 1) / BR));
    /* the first query block whose last query sees the chunk's first key */
    int64_t qb0 = 0;
    while (key_lo < key_hi && qb0 < c->nqb &&
           attn_visible_keys(p, (qb0 + 1) * BB < nq ? (qb0 + 1) * BB - 1 : nq - 1) <= key_lo)
      qb0++;
    if (key_lo < key_hi && qb0 < c->nqb) {
      load_head(c, s, &hv, b, h, qb0);
      for (int64_t kb = kb0; kb < kb1; kb++) {
        const int64_t key0 = kb * BB, nk = p->kv_len - key0 < BB ? p->kv_len - key0 : BB;
        for (int64_t qb = qb0; qb < c->nqb; qb++) {
          const int64_t hi = nq - qb * BB < BB ? nq - qb * BB : BB;
          if (attn_visible_keys(p, qb * BB + hi - 1) <= key0) continue;
          block_pair(c, s, &hv, key0, nk, qb, hi, pf);
        }
      }
    }
    /* dQ: scale (the parts are scaled when added), or 0 where no key is seen */
    for (int64_t i = 0; i < nq; i++) {
      float *row = hv.dq + i * hv.ldd;
      if (!s->query_done[i / BR]) memset(row, 0, (size_t)dp * sizeof(float));
      else if (!c->part)
        for (int64_t col = 0; col < dp; col++) row[col] *= p->scale;
    }
  }
  for (int64_t j = key_lo; j < key_hi; j++) {
    float *dk = hv.dk + j * hv.ldk, *dv = hv.dv + j * hv.ldk;
    if (!s->key_done[j / BR]) { /* no query sees these keys */
      memset(dk, 0, (size_t)dp * sizeof(float));
      memset(dv, 0, (size_t)dp * sizeof(float));
    } else {
      for (int64_t col = 0; col < dp; col++) dk[col] *= p->scale;
    }
  }
}

/* Chunks of key blocks per kv head: one when there are enough (batch, kv
 * head) pairs, else enough to make MIN_ITEMS items (but no chunk under
 * MIN_CHUNK key blocks), cut so that each chunk
 * holds about the same number of visible (query, key) pairs. Depends on the
 * shape only. Fills first[0 .. chunks]. */
static int64_t cut_chunks(const attn_problem *p, int64_t nkb, int64_t *first) {
  const int64_t pairs = p->batch * p->kv_heads;
  int64_t chunks = pairs >= MIN_ITEMS ? 1 : (MIN_ITEMS + pairs - 1) / pairs;
  if (chunks > nkb / MIN_CHUNK) chunks = nkb / MIN_CHUNK > 1 ? nkb / MIN_CHUNK : 1;
  if (chunks > MIN_ITEMS) chunks = MIN_ITEMS;
  first[0] = 0;
  first[chunks] = nkb;
  if (chunks == 1) return 1;
  double total = 0;
  for (int64_t j = 0; j < p->kv_len; j++) {
    int64_t blind = p->causal ? j - p->causal_offset : 0; /* queries before this one do not see key j */
    blind = blind < 0 ? 0 : blind > p->q_len ? p->q_len : blind;
    total += (double)(p->q_len - blind);
  }
  double sum = 0;
  int64_t c = 1;
  for (int64_t kb = 0; kb < nkb && c < chunks; kb++) {
    while (c < chunks && sum >= total * (double)c / (double)chunks) first[c++] = kb;
    for (int64_t j = kb * BB; j < (kb + 1) * BB && j < p->kv_len; j++) {
      int64_t blind = p->causal ? j - p->causal_offset : 0;
      blind = blind < 0 ? 0 : blind > p->q_len ? p->q_len : blind;
      sum += (double)(p->q_len - blind);
    }
  }
  while (c < chunks) first[c++] = nkb;
  return chunks;
}

sparq_status attn_backward_flash_f32(const attn_grad *g) {
  const attn_problem *p = &g->p;
  const int64_t dp = p->dp, nkb = (p->kv_len + BB - 1) / BB, nqb = (p->q_len + BB - 1) / BB;
  const int threads = omp_get_max_threads();
  int64_t first[MIN_ITEMS + 1];
  const int64_t chunks = cut_chunks(p, nkb, first);
  const int64_t qrows = p->batch * p->q_heads * p->q_len;
  float *scratch =
      sparq_alloc((size_t)threads * scratch_floats(dp, nqb, nkb) * sizeof(float), "flash_f32 backward scratch");
  float *part = chunks > 1 ? sparq_alloc((size_t)(chunks * qrows * dp) * sizeof(float), "flash_f32 backward dQ parts")
                           : NULL;
  if (!scratch || (chunks > 1 && !part)) {
    sparq_free(scratch);
    sparq_free(part);
    return SPARQ_ERR_NOMEM;
  }
  const bwd_ctx c = {.g = g,
                     .t = pick_tiles(),
                     .pack = flash_pick_pack(),
                     .sq = attn_q_strides(p),
                     .sk = attn_k_strides(p),
                     .nqb = nqb,
                     .chunks = chunks,
                     .chunk_kb = first,
                     .part = part};
  const int64_t items = p->batch * p->kv_heads * chunks;
  int64_t counter = 0;
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
    bwd_scratch s =
        scratch_at(scratch + (size_t)omp_get_thread_num() * scratch_floats(dp, nqb, nkb), dp, nqb, nkb);
    flash_prefetch pf;
    for (int64_t x = flash_claim_first(&counter), next; x < items; x = flash_claim_next(&counter, next)) {
      next = flash_claim_ahead(&counter, items, threads);
      if (next >= 0 && next < items) plan_prefetch(&c, next, item_steps(&c, x), &pf);
      else flash_prefetch_init(&pf, 0);
      const int64_t bk = x / chunks;
      run_item(&c, &s, bk / p->kv_heads, bk % p->kv_heads, x % chunks, &pf);
    }
    if (part) {
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t r = 0; r < qrows; r++) {
        const int64_t i = r % p->q_len, bh = r / p->q_len;
        float *dq = g->dq + (bh / p->q_heads) * c.sq.batch + (bh % p->q_heads) * c.sq.head + i * c.sq.row;
        for (int64_t col = 0; col < dp; col++) {
          float acc = part[r * dp + col];
          for (int64_t k = 1; k < chunks; k++) acc += part[(k * qrows + r) * dp + col];
          dq[col] = acc * p->scale;
        }
      }
    }
  }
  sparq_free(scratch);
  sparq_free(part);
  return SPARQ_OK;
}
