/* flash_f32 forward driver: cuts every head's queries into blocks of FLASH_BQ
 * rows, runs each block's online softmax with the best tile kernel for the
 * active ISA, which normalizes its rows into O, and writes the LSE.
 *
 * A work item is a run of query blocks of one head (a whole head when there
 * are enough heads). Its thread packs the K^T blocks of the kv head into its
 * own scratch (and keeps them for the next item of the same kv head); the
 * kernel reads Q and V and writes O in place at the tensors' strides (an NHD
 * layout costs no copies) and, while it computes, prefetches the rows of the
 * item its thread will run next. Every row's result depends on that row
 * alone, so neither the thread count nor how the items are cut or scheduled
 * changes a bit. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/attn_flash.h"
#include "sparq/base.h"

void flash_pack_t(const float *x, int64_t ld, int64_t n, int64_t dp, float scale, float *xt) {
  if (n < 64) memset(xt, 0, (size_t)(dp * 64) * sizeof(float));
  /* 16 x 16 tiles: rows are read and columns written a cache line at a time */
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int64_t jn = n - j0 < 16 ? n - j0 : 16;
    for (int64_t c0 = 0; c0 < dp; c0 += 16)
      for (int64_t j = j0; j < j0 + jn; j++) {
        const float *row = x + j * ld + c0;
        for (int c = 0; c < 16; c++) xt[(c0 + c) * 64 + j] = row[c] * scale;
      }
  }
}

flash_pack_fn flash_pick_pack(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() == SPARQ_ISA_AVX512) return flash_pack_t_avx512;
#endif
  return flash_pack_t;
}

flash_item_fn flash_pick_item(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  switch (sparq_isa_active()) {
    case SPARQ_ISA_AVX512: return flash_item_run_avx512;
    case SPARQ_ISA_AVX2: return flash_item_run_avx2;
    default: break;
  }
#endif
  return flash_item_run_scalar;
}

/* Per-thread scratch, carved from one allocation made before the parallel
 * region so an allocation failure is an ordinary error return. */
typedef struct flash_scratch {
  float *kt; /* [nkb][dp][FLASH_BK]: K^T blocks [0, packed_blocks) of kv head packed_head */
  float *q, *o, *m, *l, *pt, *alpha, *lsum;
  int64_t *visible;
  int64_t packed_head, packed_blocks;
} flash_scratch;

static size_t scratch_floats(int64_t dp, int64_t nkb) {
  /* kt; q, o: BQ x dp; m: BQ; l: BQ x 16; pt: RG x BK; alpha: 16; lsum: BQ; visible: BQ int64 = 2 BQ floats */
  const size_t n = (size_t)(nkb * dp * FLASH_BK + 2 * FLASH_BQ * dp + FLASH_BQ + 16 * FLASH_BQ +
                            FLASH_RG * FLASH_BK + 16 + FLASH_BQ + 2 * FLASH_BQ);
  return (n + 15) / 16 * 16; /* threads' scratch on separate cache lines */
}

static flash_scratch scratch_at(float *base, int64_t dp, int64_t nkb) {
  flash_scratch s;
  s.kt = base;
  s.q = s.kt + nkb * dp * FLASH_BK;
  s.o = s.q + FLASH_BQ * dp;
  s.m = s.o + FLASH_BQ * dp;
  s.l = s.m + FLASH_BQ;
  s.pt = s.l + 16 * FLASH_BQ;
  s.alpha = s.pt + FLASH_RG * FLASH_BK;
  s.lsum = s.alpha + 16;
  s.visible = (int64_t *)(void *)(s.lsum + FLASH_BQ);
  s.packed_head = -1;
  s.packed_blocks = 0;
  return s;
}

enum { PREFETCH_MAX = 320 << 10 }; /* bytes: items that read more are not prefetched (nor worth it) */

/* Query rows [*q0, *q1) of item x (a run of query blocks of one head). */
static void item_rows(const attn_problem *p, int64_t runs, int64_t x, int64_t *bh, int64_t *q0, int64_t *q1) {
  const int64_t nqb = (p->q_len + FLASH_BQ - 1) / FLASH_BQ, run = runs - 1 - x % runs;
  *bh = x / runs;
  *q0 = run * nqb / runs * FLASH_BQ;
  *q1 = (run + 1) * nqb / runs * FLASH_BQ < p->q_len ? (run + 1) * nqb / runs * FLASH_BQ : p->q_len;
}

/* Plans the prefetch of item x's K, V, Q and O rows over the current item's
 * `steps` row-group tiles. */
static void plan_prefetch(const attn_problem *p, int64_t runs, int64_t x, int64_t steps, flash_prefetch *pf) {
  int64_t bh, q0, q1;
  item_rows(p, runs, x, &bh, &q0, &q1);
  const int64_t b = bh / p->q_heads, h = bh % p->q_heads, hk = attn_kv_head(p, h);
  const attn_strides sq = attn_q_strides(p), sk = attn_k_strides(p);
  const int64_t keys = attn_visible_keys(p, q1 - 1), row = p->dp * (int64_t)sizeof(float);
  flash_prefetch_init(pf, row);
  if ((2 * keys + 2 * (q1 - q0)) * row > PREFETCH_MAX) return;
  const int64_t kofs = b * sk.batch + hk * sk.head, qofs = b * sq.batch + h * sq.head + q0 * sq.row;
  flash_prefetch_add(pf, p->k + kofs, sk.row * 4, keys, false);
  flash_prefetch_add(pf, p->q + qofs, sq.row * 4, q1 - q0, false);
  flash_prefetch_add(pf, p->v + kofs, sk.row * 4, keys, false);
  flash_prefetch_add(pf, p->o + qofs, sq.row * 4, q1 - q0, true);
  pf->per_step = flash_prefetch_lines(pf) * 2 / (steps > 0 ? steps : 1) + 1;
}

/* Query block [q0, q0 + FLASH_BQ) of head (b, h). */
static void run_block(const attn_problem *p, flash_item_fn kernel, flash_pack_fn pack, flash_scratch *s, int64_t b,
                      int64_t h, int64_t q0, flash_prefetch *pf) {
  const int64_t dp = p->dp, hk = attn_kv_head(p, h);
  const attn_strides sq = attn_q_strides(p), sk = attn_k_strides(p);
  const int64_t rows = p->q_len - q0 < FLASH_BQ ? p->q_len - q0 : FLASH_BQ;
  const int64_t padded = (rows + FLASH_RG - 1) / FLASH_RG * FLASH_RG;

  /* K^T blocks up to the last key any row sees (visibility grows with the row) */
  const int64_t most = attn_visible_keys(p, q0 + rows - 1);
  const int64_t need = (most + FLASH_BK - 1) / FLASH_BK, head = b * p->kv_heads + hk;
  if (s->packed_head != head) s->packed_head = head, s->packed_blocks = 0;
  const float *k = p->k + b * sk.batch + hk * sk.head;
  for (int64_t kb = s->packed_blocks; kb < need; kb++) {
    const int64_t n = p->kv_len - kb * FLASH_BK < FLASH_BK ? p->kv_len - kb * FLASH_BK : FLASH_BK;
    pack(k + kb * FLASH_BK * sk.row, sk.row, n, dp, 1.0f, s->kt + kb * dp * FLASH_BK);
  }
  if (need > s->packed_blocks) s->packed_blocks = need;

  const int64_t qofs = b * sq.batch + h * sq.head + q0 * sq.row;
  for (int64_t r = 0; r < padded; r++) s->visible[r] = attn_visible_keys(p, q0 + (r < rows ? r : rows - 1));
  flash_item it = {.qsrc = p->q + qofs,
                   .ldq = sq.row,
                   .qscale = p->scale * FLASH_LOG2E,
                   .kt = s->kt,
                   .v = p->v + b * sk.batch + hk * sk.head,
                   .ldv = sk.row,
                   .visible = s->visible,
                   .rows = rows,
                   .padded = padded,
                   .dp = dp,
                   .out = p->o + qofs,
                   .ldo = sq.row,
                   .lsum = s->lsum,
                   .q = s->q,
                   .o = s->o,
                   .m = s->m,
                   .l = s->l,
                   .pt = s->pt,
                   .alpha = s->alpha,
                   .pf = pf};
  kernel(&it);

  /* rows that see no key: O = 0, LSE = -inf */
  float *lse = p->lse ? p->lse + (b * p->q_heads + h) * p->q_len + q0 : NULL;
  for (int64_t r = 0; r < rows; r++) {
    if (s->visible[r] == 0) {
      memset(p->o + qofs + r * sq.row, 0, (size_t)dp * sizeof(float));
      if (lse) lse[r] = -INFINITY;
    } else if (lse) {
      lse[r] = (float)((double)s->m[r] * (double)FLASH_LN2 + log((double)s->lsum[r]));
    }
  }
}

sparq_status attn_forward_flash_f32(const attn_problem *p) {
  const int64_t dp = p->dp, nkb = (p->kv_len + FLASH_BK - 1) / FLASH_BK;
  const int threads = omp_get_max_threads();
  float *scratch = sparq_alloc((size_t)threads * scratch_floats(dp, nkb) * sizeof(float), "flash_f32 scratch");
  if (!scratch) return SPARQ_ERR_NOMEM;
  const flash_item_fn kernel = flash_pick_item();
  const flash_pack_fn pack = flash_pick_pack();
  /* Whole heads when there are enough of them (each packs its K^T once);
   * else heads cut into runs of query blocks, about 8 items per thread, so
   * the claims even out uneven runs and busy neighbours. */
  const int64_t nqb = (p->q_len + FLASH_BQ - 1) / FLASH_BQ, heads = p->batch * p->q_heads;
  int64_t runs = threads > 1 ? (8 * threads + heads - 1) / heads : 1;
  if (runs > nqb) runs = nqb;
  const int64_t items = heads * runs;
  int64_t counter = 0;
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
    flash_scratch s = scratch_at(scratch + (size_t)omp_get_thread_num() * scratch_floats(dp, nkb), dp, nkb);
    flash_prefetch pf;
    /* item order: last runs first, under a causal mask they are the longest */
    for (int64_t x = flash_claim_first(&counter), next; x < items; x = flash_claim_next(&counter, next)) {
      int64_t bh, q0, q1;
      item_rows(p, runs, x, &bh, &q0, &q1);
      const int64_t nkv = (attn_visible_keys(p, q1 - 1) + FLASH_BK - 1) / FLASH_BK;
      const int64_t steps = (q1 - q0 + FLASH_RG - 1) / FLASH_RG * (p->causal ? (nkv + 1) / 2 : nkv);
      next = flash_claim_ahead(&counter, items, threads);
      if (next >= 0 && next < items) plan_prefetch(p, runs, next, steps, &pf);
      else flash_prefetch_init(&pf, 0);
      for (int64_t qb0 = (q1 - 1) / FLASH_BQ * FLASH_BQ; qb0 >= q0; qb0 -= FLASH_BQ)
        run_block(p, kernel, pack, &s, bh / p->q_heads, bh % p->q_heads, qb0, &pf);
    }
  }
  sparq_free(scratch);
  return SPARQ_OK;
}
