/* flash_f32 forward driver: packs K^T once per kv head, cuts the queries into
 * work items of FLASH_BQ rows, runs each item's online softmax with the best
 * tile kernel for the active ISA and normalizes its rows.
 *
 * Every item owns its output rows and runs start to finish on one thread, so
 * the result does not depend on the thread count or on the dynamic schedule
 * (which balances the uneven causal items). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/attn_flash.h"
#include "sparq/base.h"

void flash_pack_kt(const float *k, int64_t kv_len, int64_t dp, float *kt) {
  const int64_t nkb = (kv_len + FLASH_BK - 1) / FLASH_BK;
  for (int64_t kb = 0; kb < nkb; kb++) {
    float *blk = kt + kb * dp * FLASH_BK;
    const int64_t n = kv_len - kb * FLASH_BK < FLASH_BK ? kv_len - kb * FLASH_BK : FLASH_BK;
    if (n < FLASH_BK) memset(blk, 0, (size_t)(dp * FLASH_BK) * sizeof(float));
    for (int64_t j = 0; j < n; j++) {
      const float *row = k + (kb * FLASH_BK + j) * dp;
      for (int64_t c = 0; c < dp; c++) blk[c * FLASH_BK + j] = row[c];
    }
  }
}

typedef void (*item_fn)(const flash_item *it);

static item_fn pick_kernel(void) {
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
  float *q, *o, *m, *l, *pt, *alpha;
  int64_t *visible;
} flash_scratch;

static size_t scratch_floats(int64_t dp) {
  /* q, o: BQ x dp; m: BQ; l: BQ x 16; pt: RG x BK; alpha: 16; visible: BQ int64 = 2 BQ floats */
  return (size_t)(2 * FLASH_BQ * dp + FLASH_BQ + 16 * FLASH_BQ + FLASH_RG * FLASH_BK + 16 + 2 * FLASH_BQ);
}

static flash_scratch scratch_at(float *base, int64_t dp) {
  flash_scratch s;
  s.q = base;
  s.o = s.q + FLASH_BQ * dp;
  s.m = s.o + FLASH_BQ * dp;
  s.l = s.m + FLASH_BQ;
  s.pt = s.l + 16 * FLASH_BQ;
  s.alpha = s.pt + FLASH_RG * FLASH_BK;
  s.visible = (int64_t *)(void *)(s.alpha + 16);
  return s;
}

/* Sum of 16 lanes in a fixed pairwise order, the same for every kernel. */
static float sum16(const float *l) {
  float t[8];
  for (int i = 0; i < 8; i++) t[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; i++) t[i] += t[i + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

static void run_item(const attn_problem *p, const float *kt_all, int64_t nkb, item_fn kernel, flash_scratch *s,
                     int64_t b, int64_t h, int64_t q0) {
  const int64_t dp = p->dp, hk = attn_kv_head(p, h);
  const int64_t rows = p->q_len - q0 < FLASH_BQ ? p->q_len - q0 : FLASH_BQ;
  const int64_t padded = (rows + FLASH_RG - 1) / FLASH_RG * FLASH_RG;
  const float qscale = p->scale * FLASH_LOG2E;
  const float *q = attn_q_at(p, b, h) + q0 * dp;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < dp; c++) s->q[r * dp + c] = q[r * dp + c] * qscale;
  memset(s->q + rows * dp, 0, (size_t)((padded - rows) * dp) * sizeof(float));
  for (int64_t r = 0; r < padded; r++) s->visible[r] = attn_visible_keys(p, q0 + (r < rows ? r : rows - 1));
  memset(s->o, 0, (size_t)(padded * dp) * sizeof(float));
  memset(s->l, 0, (size_t)(padded * 16) * sizeof(float));
  for (int64_t r = 0; r < padded; r++) s->m[r] = FLASH_MASK;

  flash_item it = {.q = s->q,
                   .kt = kt_all + (b * p->kv_heads + hk) * nkb * dp * FLASH_BK,
                   .v = attn_v_at(p, b, hk),
                   .visible = s->visible,
                   .rows = padded,
                   .dp = dp,
                   .kv_len = p->kv_len,
                   .o = s->o,
                   .m = s->m,
                   .l = s->l,
                   .pt = s->pt,
                   .alpha = s->alpha};
  kernel(&it);

  float *o = attn_o_at(p, b, h) + q0 * dp;
  float *lse = p->lse ? p->lse + (b * p->q_heads + h) * p->q_len + q0 : NULL;
  for (int64_t r = 0; r < rows; r++) {
    if (s->visible[r] == 0) {
      memset(o + r * dp, 0, (size_t)dp * sizeof(float));
      if (lse) lse[r] = -INFINITY;
      continue;
    }
    const float l = sum16(s->l + r * 16);
    for (int64_t c = 0; c < dp; c++) o[r * dp + c] = s->o[r * dp + c] / l;
    if (lse) lse[r] = (float)((double)s->m[r] * (double)FLASH_LN2 + log((double)l));
  }
}

sparq_status attn_forward_flash_f32(const attn_problem *p) {
  const int64_t dp = p->dp, nkb = (p->kv_len + FLASH_BK - 1) / FLASH_BK;
  const int64_t heads = p->batch * p->kv_heads;
  const int threads = omp_get_max_threads();
  float *kt = sparq_alloc((size_t)(heads * nkb * dp * FLASH_BK) * sizeof(float), "flash_f32 packed K");
  float *scratch = sparq_alloc((size_t)threads * scratch_floats(dp) * sizeof(float), "flash_f32 scratch");
  if (!kt || !scratch) {
    sparq_free(kt);
    sparq_free(scratch);
    return SPARQ_ERR_NOMEM;
  }
  const item_fn kernel = pick_kernel();
  const int64_t nqb = (p->q_len + FLASH_BQ - 1) / FLASH_BQ, items = p->batch * p->q_heads * nqb;
#pragma omp parallel num_threads(threads)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t x = 0; x < heads * nkb; x++) {
      const int64_t head = x / nkb, kb = x % nkb;
      const int64_t n = p->kv_len - kb * FLASH_BK < FLASH_BK ? p->kv_len - kb * FLASH_BK : FLASH_BK;
      flash_pack_kt(p->k + (head * p->kv_len + kb * FLASH_BK) * dp, n, dp, kt + (head * nkb + kb) * dp * FLASH_BK);
    }
    flash_scratch s = scratch_at(scratch + (size_t)omp_get_thread_num() * scratch_floats(dp), dp);
    /* last query blocks first: under a causal mask they are the longest */
#pragma omp for schedule(dynamic, 1)
    for (int64_t x = 0; x < items; x++) {
      const int64_t qb = nqb - 1 - x % nqb, bh = x / nqb;
      run_item(p, kt, nkb, kernel, &s, bh / p->q_heads, bh % p->q_heads, qb * FLASH_BQ);
    }
  }
  sparq_free(kt);
  sparq_free(scratch);
  return SPARQ_OK;
}
