/* V:N:M mask selection (spec §2): the joint search over all 4-column
 * subsets and the two-step rule, block by block, plus the mask checker.
 *
 * Sums follow one canonical order everywhere (rows within a block-group,
 * then groups, then blocks) so sparq_vnm_retained reproduces the value the
 * selection reports bit for bit, and the permutation search compares like
 * with like. */
#include <string.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

int vnm_subsets(int m, uint64_t *out, int cap) {
  int n = 0;
  for (int a = 0; a < m; a++)
    for (int b = a + 1; b < m; b++)
      for (int c = b + 1; c < m; c++)
        for (int d = c + 1; d < m; d++) {
          if (n == cap) return 0;
          out[n++] = (uint64_t)1 << a | (uint64_t)1 << b | (uint64_t)1 << c | (uint64_t)1 << d;
        }
  return n;
}

sparq_status vnm_block_scratch_init(vnm_block_scratch *b, int v, int m, sparq_vnm_select select, const char *who) {
  memset(b, 0, sizeof *b);
  if (select == SPARQ_VNM_SELECT_JOINT && m > SPARQ_VNM_JOINT_MAX_M)
    return sparq_fail(SPARQ_ERR_UNSUPPORTED, "%s: joint selection visits C(M,4) subsets and takes M <= %d, got %d "
                      "(use two-step)", who, SPARQ_VNM_JOINT_MAX_M, m);
  b->cols = sparq_alloc((size_t)v * (size_t)m * sizeof(double), who);
  b->top = sparq_alloc((size_t)v * sizeof(double), who);
  b->subsets = sparq_alloc(VNM_MAX_SUBSETS * sizeof(uint64_t), who);
  if (!b->cols || !b->top || !b->subsets) {
    vnm_block_scratch_free(b);
    return SPARQ_ERR_NOMEM;
  }
  if (select == SPARQ_VNM_SELECT_JOINT) b->nsub = vnm_subsets(m, b->subsets, VNM_MAX_SUBSETS);
  return SPARQ_OK;
}

void vnm_block_scratch_free(vnm_block_scratch *b) {
  sparq_free(b->cols);
  sparq_free(b->top);
  sparq_free(b->subsets);
  memset(b, 0, sizeof *b);
}

/* Sum over rows of the best 2 of the 4 columns a..d (column-major cols, v
 * rows each). A max/min network instead of a sort, so the loop vectorises;
 * 8 partial sums in a fixed order keep it deterministic. Only ranks the
 * subsets: the reported total is recomputed in canonical order. */
static double subset_score(const double *cols, int v, const int k[4], double *top) {
  const double *a = cols + (size_t)k[0] * v, *b = cols + (size_t)k[1] * v, *c = cols + (size_t)k[2] * v,
               *d = cols + (size_t)k[3] * v;
  for (int r = 0; r < v; r++) {
    double m1 = a[r] > b[r] ? a[r] : b[r], n1 = a[r] > b[r] ? b[r] : a[r];
    double m2 = c[r] > d[r] ? c[r] : d[r], n2 = c[r] > d[r] ? d[r] : c[r];
    double first = m1 > m2 ? m1 : m2, lo = m1 > m2 ? m2 : m1, hi_n = n1 > n2 ? n1 : n2;
    top[r] = first + (lo > hi_n ? lo : hi_n);
  }
  double part[8] = {0};
  int r = 0;
  for (; r + 8 <= v; r += 8)
    for (int j = 0; j < 8; j++) part[j] += top[r + j];
  for (; r < v; r++) part[r & 7] += top[r];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

double vnm_block_select(const double *s, int v, int m, sparq_vnm_select select, vnm_block_scratch *scratch,
                        uint64_t *kept, uint8_t *pairs) {
  uint64_t best = 0;
  if (select == SPARQ_VNM_SELECT_JOINT) {
    double *cols = scratch->cols, *top = scratch->top;
    for (int r = 0; r < v; r++)
      for (int j = 0; j < m; j++) cols[(size_t)j * v + r] = s[(size_t)r * m + j];
    double best_sum = -1;
    for (int i = 0; i < scratch->nsub; i++) {
      uint64_t sub = scratch->subsets[i];
      int k[4], n = 0;
      for (int j = 0; j < m; j++)
        if (sub >> j & 1) k[n++] = j;
      double sum = subset_score(cols, v, k, top);
      if (sum > best_sum) best_sum = sum, best = sub;
    }
  } else {
    double colsum[SPARQ_VNM_MAX_M] = {0};
    uint8_t corder[SPARQ_VNM_MAX_M];
    for (int r = 0; r < v; r++)
      for (int j = 0; j < m; j++) colsum[j] += s[(size_t)r * m + j];
    vnm_row_order(colsum, m, corder);
    for (int k = 0; k < 4; k++) best |= (uint64_t)1 << corder[k];
  }
  uint8_t order[SPARQ_VNM_MAX_M];
  double total = 0;
  for (int r = 0; r < v; r++) {
    int a, b;
    vnm_row_order(s + (size_t)r * m, m, order);
    total += vnm_top2(s + (size_t)r * m, order, best, &a, &b);
    if (pairs) pairs[2 * r] = (uint8_t)a, pairs[2 * r + 1] = (uint8_t)b;
  }
  *kept = best;
  return total;
}

sparq_status vnm_check_perm(const char *who, const char *what, const int32_t *perm, int64_t n) {
  if (!perm) return SPARQ_OK;
  uint8_t *seen = sparq_calloc((size_t)(n > 0 ? n : 1), 1, who);
  if (!seen) return SPARQ_ERR_NOMEM;
  sparq_status st = SPARQ_OK;
  for (int64_t i = 0; i < n; i++) {
    int32_t p = perm[i];
    if (p < 0 || p >= n || seen[p]) {
      st = sparq_fail(SPARQ_ERR_ARG, "%s: %s is not a permutation of 0..%lld: entry %lld is %d%s", who, what,
                      (long long)n - 1, (long long)i, (int)p, p >= 0 && p < n ? " (repeated)" : "");
      break;
    }
    seen[p] = 1;
  }
  sparq_free(seen);
  return st;
}

sparq_status vnm_check_problem(const char *who, const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                               const int32_t *row_perm, const int32_t *col_perm) {
  sparq_status st = sparq_vnm_pattern_check(p, who);
  if (st != SPARQ_OK) return st;
  if (rows < 0 || cols < 0 || rows > INT32_MAX - SPARQ_VNM_MAX_V || cols > INT32_MAX - SPARQ_VNM_MAX_M)
    return sparq_fail(SPARQ_ERR_ARG, "%s: bad shape %lld x %lld", who, (long long)rows, (long long)cols);
  size_t n;
  if (!sparq_size_mul((size_t)rows, (size_t)cols, &n))
    return sparq_fail(SPARQ_ERR_ARG, "%s: shape %lld x %lld overflows", who, (long long)rows, (long long)cols);
  if (n > 0 && !score) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL score matrix", who);
  int64_t bad = (int64_t)n;
#pragma omp parallel for schedule(static) reduction(min : bad)
  for (int64_t i = 0; i < (int64_t)n; i++)
    if (score[i] < 0 && i < bad) bad = i;
  if (bad < (int64_t)n)
    return sparq_fail(SPARQ_ERR_ARG, "%s: score[%lld][%lld] = %g is negative (scores must be >= 0)", who,
                      (long long)(bad / cols), (long long)(bad % cols), (double)score[bad]);
  if ((st = vnm_check_perm(who, "row_perm", row_perm, sparq_vnm_round_up(rows, p.v))) != SPARQ_OK) return st;
  return vnm_check_perm(who, "col_perm", col_perm, sparq_vnm_round_up(cols, p.m));
}

sparq_status sparq_vnm_select_mask(const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                                   sparq_vnm_select select, const int32_t *row_perm, const int32_t *col_perm,
                                   uint8_t *mask, double *retained) {
  const char *who = "sparq_vnm_select_mask";
  sparq_status st = vnm_check_problem(who, score, rows, cols, p, row_perm, col_perm);
  if (st != SPARQ_OK) return st;
  if (select != SPARQ_VNM_SELECT_JOINT && select != SPARQ_VNM_SELECT_TWOSTEP)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown selection %d", who, (int)select);
  /* fail here, not in the workers, so the caller gets the real reason */
  vnm_block_scratch probe;
  if ((st = vnm_block_scratch_init(&probe, p.v, p.m, select, who)) != SPARQ_OK) return st;
  vnm_block_scratch_free(&probe);
  int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
  int64_t nblocks = rp / p.v, groups = cp / p.m;
  if (rp * cp > 0 && !mask) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL mask", who);
  double *block_sum = sparq_calloc((size_t)(nblocks > 0 ? nblocks : 1), sizeof(double), who);
  if (!block_sum) return SPARQ_ERR_NOMEM;
  if (rp * cp > 0) memset(mask, 0, (size_t)(rp * cp));
  int failed = 0;
#pragma omp parallel
  {
    vnm_block_scratch sc;
    sparq_status lst = vnm_block_scratch_init(&sc, p.v, p.m, select, who);
    double *s = lst == SPARQ_OK ? sparq_alloc((size_t)p.v * (size_t)p.m * sizeof(double), who) : NULL;
    uint8_t *pairs = lst == SPARQ_OK ? sparq_alloc((size_t)p.v * 2, who) : NULL;
    if (!s || !pairs) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < nblocks; b++) {
      if (!s || !pairs) continue;
      double sum = 0;
      for (int64_t g = 0; g < groups; g++) {
        for (int r = 0; r < p.v; r++)
          for (int j = 0; j < p.m; j++)
            s[r * p.m + j] = vnm_score_at(score, rows, cols, row_perm, col_perm, b * p.v + r, g * p.m + j);
        uint64_t kept;
        sum += vnm_block_select(s, p.v, p.m, select, &sc, &kept, pairs);
        for (int r = 0; r < p.v; r++) {
          uint8_t *row = mask + (b * p.v + r) * cp + g * p.m;
          row[pairs[2 * r]] = 1;
          row[pairs[2 * r + 1]] = 1;
        }
      }
      block_sum[b] = sum;
    }
    sparq_free(s);
    sparq_free(pairs);
    vnm_block_scratch_free(&sc);
  }
  if (failed) {
    sparq_free(block_sum);
    /* the message of the failing thread may not be ours to read; name it here */
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory for block scratch (V = %d, M = %d)", who, p.v, p.m);
  }
  double total = 0;
  for (int64_t b = 0; b < nblocks; b++) total += block_sum[b];
  if (retained) *retained = total;
  sparq_free(block_sum);
  return SPARQ_OK;
}

sparq_status sparq_vnm_mask_check(const uint8_t *mask, int64_t rows_pad, int64_t cols_pad, sparq_vnm_pattern p) {
  const char *who = "sparq_vnm_mask_check";
  sparq_status st = sparq_vnm_pattern_check(p, who);
  if (st != SPARQ_OK) return st;
  if (rows_pad < 0 || cols_pad < 0 || rows_pad % p.v || cols_pad % p.m)
    return sparq_fail(SPARQ_ERR_ARG, "%s: shape %lld x %lld is not a multiple of the %d x %d blocks", who,
                      (long long)rows_pad, (long long)cols_pad, p.v, p.m);
  if (rows_pad * cols_pad > 0 && !mask) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL mask", who);
  for (int64_t b = 0; b < rows_pad / p.v; b++)
    for (int64_t g = 0; g < cols_pad / p.m; g++) {
      uint64_t used = 0;
      for (int64_t r = b * p.v; r < (b + 1) * p.v; r++) {
        const uint8_t *row = mask + r * cols_pad + g * p.m;
        int kept = 0;
        for (int j = 0; j < p.m; j++)
          if (row[j]) kept++, used |= (uint64_t)1 << j;
        if (kept != 2)
          return sparq_fail(SPARQ_ERR_ARG, "%s: row %lld keeps %d entries in group %lld (columns %lld..%lld), "
                            "expected 2", who, (long long)r, kept, (long long)g, (long long)(g * p.m),
                            (long long)(g * p.m + p.m - 1));
      }
      int ncols = __builtin_popcountll(used);
      if (ncols > 4)
        return sparq_fail(SPARQ_ERR_ARG, "%s: block %lld (rows %lld..%lld) keeps %d columns of group %lld, "
                          "at most 4 allowed", who, (long long)b, (long long)(b * p.v),
                          (long long)((b + 1) * p.v - 1), ncols, (long long)g);
    }
  return SPARQ_OK;
}

double sparq_vnm_retained(const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                          const int32_t *row_perm, const int32_t *col_perm, const uint8_t *mask) {
  int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
  double total = 0;
  for (int64_t b = 0; b < rp / p.v; b++) {
    double block = 0;
    for (int64_t g = 0; g < cp / p.m; g++) {
      double bg = 0;
      for (int64_t r = b * p.v; r < (b + 1) * p.v; r++) {
        double pair = 0;
        for (int64_t c = g * p.m; c < (g + 1) * p.m; c++)
          if (mask[r * cp + c]) pair += vnm_score_at(score, rows, cols, row_perm, col_perm, r, c);
        bg += pair;
      }
      block += bg;
    }
    total += block;
  }
  return total;
}
