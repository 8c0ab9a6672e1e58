/* V:N:M channel permutation (spec §4): swap-based local search on the exact
 * retained score, alternating between input columns and output rows.
 *
 * A column swap changes two groups in every block, a row swap changes two
 * blocks in every group; only those block-groups are re-scored. The row
 * phase of the joint search keeps, per block-group, the score sum of every
 * 4-column subset, so a row swap costs two rows' worth of subset sums per
 * group instead of re-scoring 2 x V rows. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/vnm_internal.h"
#include "sparq/base.h"

/* Work budget per phase, in rough inner-loop steps (about a second on one
 * core); the automatic try counts stay below it. */
#define PHASE_BUDGET 1.5e9
/* A proposal is scored in parallel only above this many steps: a parallel
 * region costs microseconds on an idle machine and milliseconds on a busy one. */
#define PARALLEL_MIN_STEPS 2e6
/* The joint row cache may use this much memory, else rows are re-scored. */
#define ROW_CACHE_MAX_BYTES ((size_t)512 << 20)

typedef struct perm_state {
  int64_t rows, cols, rp, cp, nblocks, groups;
  int v, m;
  sparq_vnm_select select;
  float *st;         /* cp x rp: st[c * rp + r] = clean score of original (row_perm[r], c) */
  float *sr;         /* rp x cp: sr[i * cp + c] = clean score of original (i, col_perm[c]) */
  double *val;       /* nblocks x groups: retained score of each block-group */
  int32_t *row_perm; /* rp */
  int32_t *col_perm; /* cp */
  double step_cost; /* rough steps to score one row of one block-group */
  int nthreads;
  vnm_block_scratch *scratch; /* one per thread */
  double **sbuf;              /* one v x m buffer per thread */
} perm_state;

static float clean_f(float s) { return (float)vnm_clean(s); }

/* st follows row_perm; rebuilt when the row phase changes it. */
static void build_st(perm_state *ps, const float *score) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < ps->cp; c++)
    for (int64_t r = 0; r < ps->rp; r++) {
      int64_t i = ps->row_perm[r];
      ps->st[c * ps->rp + r] = i < ps->rows && c < ps->cols ? clean_f(score[i * ps->cols + c]) : 0.0f;
    }
}

/* sr follows col_perm; rebuilt when the column phase changes it. */
static void build_sr(perm_state *ps, const float *score) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ps->rp; i++)
    for (int64_t c = 0; c < ps->cp; c++) {
      int64_t j = ps->col_perm[c];
      ps->sr[i * ps->cp + c] = i < ps->rows && j < ps->cols ? clean_f(score[i * ps->cols + j]) : 0.0f;
    }
}

/* Retained score of block b, group g under the current col_perm, from st. */
static double value_from_st(const perm_state *ps, int64_t b, int64_t g, int tid) {
  double *s = ps->sbuf[tid];
  for (int k = 0; k < ps->m; k++) {
    const float *col = ps->st + (int64_t)ps->col_perm[g * ps->m + k] * ps->rp + b * ps->v;
    for (int r = 0; r < ps->v; r++) s[r * ps->m + k] = col[r];
  }
  uint64_t kept;
  return vnm_block_select(s, ps->v, ps->m, ps->select, &ps->scratch[tid], &kept, NULL);
}

/* Same from sr, under the current row_perm. */
static double value_from_sr(const perm_state *ps, int64_t b, int64_t g, int tid) {
  double *s = ps->sbuf[tid];
  for (int r = 0; r < ps->v; r++) {
    const float *row = ps->sr + (int64_t)ps->row_perm[b * ps->v + r] * ps->cp + g * ps->m;
    for (int k = 0; k < ps->m; k++) s[r * ps->m + k] = row[k];
  }
  uint64_t kept;
  return vnm_block_select(s, ps->v, ps->m, ps->select, &ps->scratch[tid], &kept, NULL);
}

static double table_total(const perm_state *ps) {
  double t = 0;
  for (int64_t i = 0; i < ps->nblocks * ps->groups; i++) t += ps->val[i];
  return t;
}

/* A gain must beat the rounding noise of the sums it compares. */
static bool is_gain(double delta, double total) { return delta > 1e-12 * (total > 1e-300 ? total : 1e-300); }

static void column_phase(perm_state *ps, const float *score, int64_t tries, sparq_rng *rng) {
  build_st(ps, score);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ps->nblocks * ps->groups; i++)
    ps->val[i] = value_from_st(ps, i / ps->groups, i % ps->groups, omp_get_thread_num());
  if (ps->groups < 2) return;
  double *fresh = sparq_alloc((size_t)ps->nblocks * 2 * sizeof(double), "vnm permute");
  if (!fresh) return; /* the search is an optimisation: stop early, keep what we have */
  double total = table_total(ps);
  const bool parallel = ps->step_cost * 2.0 * (double)ps->rp > PARALLEL_MIN_STEPS;
  for (int64_t t = 0; t < tries; t++) {
    int64_t c1 = (int64_t)sparq_rng_below(rng, (uint64_t)ps->cp), c2 = (int64_t)sparq_rng_below(rng, (uint64_t)ps->cp);
    int64_t g1 = c1 / ps->m, g2 = c2 / ps->m;
    if (g1 == g2) continue;
    int32_t tmp = ps->col_perm[c1];
    ps->col_perm[c1] = ps->col_perm[c2];
    ps->col_perm[c2] = tmp;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < 2 * ps->nblocks; i++)
      fresh[i] = value_from_st(ps, i >> 1, (i & 1) ? g2 : g1, omp_get_thread_num());
    double delta = 0;
    for (int64_t b = 0; b < ps->nblocks; b++)
      delta += (fresh[2 * b] - ps->val[b * ps->groups + g1]) + (fresh[2 * b + 1] - ps->val[b * ps->groups + g2]);
    if (is_gain(delta, total)) {
      for (int64_t b = 0; b < ps->nblocks; b++) {
        ps->val[b * ps->groups + g1] = fresh[2 * b];
        ps->val[b * ps->groups + g2] = fresh[2 * b + 1];
      }
      total += delta;
    } else {
      ps->col_perm[c2] = ps->col_perm[c1];
      ps->col_perm[c1] = tmp;
    }
  }
  sparq_free(fresh);
}

/* Subset sums t2[k] of one row's group scores (m of them at s). */
static void row_subset_sums(const float *s, int m, const uint64_t *subsets, int nsub, double *t2) {
  double d[SPARQ_VNM_MAX_M];
  uint8_t order[SPARQ_VNM_MAX_M];
  for (int k = 0; k < m; k++) d[k] = s[k];
  vnm_row_order(d, m, order);
  for (int k = 0; k < nsub; k++) t2[k] = vnm_top2(d, order, subsets[k], NULL, NULL);
}

static double max_of(const double *a, int n) {
  double best = a[0];
  for (int k = 1; k < n; k++)
    if (a[k] > best) best = a[k];
  return best;
}

/* Joint row phase with the subset-sum cache sub[(b * groups + g) * nsub + k]. */
static void row_phase_cached(perm_state *ps, double *sub, int64_t tries, sparq_rng *rng) {
  const int nsub = ps->scratch[0].nsub;
  const uint64_t *subsets = ps->scratch[0].subsets;
#pragma omp parallel
  {
    double *t2 = sparq_alloc((size_t)nsub * sizeof(double), "vnm permute");
#pragma omp for schedule(static)
    for (int64_t i = 0; i < ps->nblocks * ps->groups; i++) {
      double *si = sub + i * nsub;
      for (int k = 0; k < nsub; k++) si[k] = 0;
      int64_t b = i / ps->groups, g = i % ps->groups;
      for (int r = 0; r < ps->v; r++) {
        if (!t2) break;
        row_subset_sums(ps->sr + (int64_t)ps->row_perm[b * ps->v + r] * ps->cp + g * ps->m, ps->m, subsets, nsub, t2);
        for (int k = 0; k < nsub; k++) si[k] += t2[k];
      }
      ps->val[i] = max_of(si, nsub);
    }
    sparq_free(t2);
  }
  size_t scratch_doubles = (size_t)ps->groups * (size_t)nsub * 4 + (size_t)ps->groups * 2;
  double *work = sparq_alloc(scratch_doubles * sizeof(double), "vnm permute");
  if (!work) return;
  double *n1 = work, *n2 = n1 + ps->groups * nsub, *tx = n2 + ps->groups * nsub, *ty = tx + ps->groups * nsub;
  double *v1 = ty + ps->groups * nsub, *v2 = v1 + ps->groups;
  double total = table_total(ps);
  const bool parallel = (double)ps->groups * (60.0 + nsub * 16.0) > PARALLEL_MIN_STEPS;
  for (int64_t t = 0; t < tries; t++) {
    int64_t r1 = (int64_t)sparq_rng_below(rng, (uint64_t)ps->rp), r2 = (int64_t)sparq_rng_below(rng, (uint64_t)ps->rp);
    int64_t b1 = r1 / ps->v, b2 = r2 / ps->v;
    if (b1 == b2) continue;
    const float *x = ps->sr + (int64_t)ps->row_perm[r1] * ps->cp, *y = ps->sr + (int64_t)ps->row_perm[r2] * ps->cp;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t g = 0; g < ps->groups; g++) {
      double *gx = tx + g * nsub, *gy = ty + g * nsub, *a = n1 + g * nsub, *c = n2 + g * nsub;
      const double *s1 = sub + (b1 * ps->groups + g) * nsub, *s2 = sub + (b2 * ps->groups + g) * nsub;
      row_subset_sums(x + g * ps->m, ps->m, subsets, nsub, gx);
      row_subset_sums(y + g * ps->m, ps->m, subsets, nsub, gy);
      for (int k = 0; k < nsub; k++) {
        a[k] = s1[k] - gx[k] + gy[k];
        c[k] = s2[k] - gy[k] + gx[k];
      }
      v1[g] = max_of(a, nsub);
      v2[g] = max_of(c, nsub);
    }
    /* summed here in group order so the decision is the same for any thread count */
    double delta = 0;
    for (int64_t g = 0; g < ps->groups; g++)
      delta += (v1[g] - ps->val[b1 * ps->groups + g]) + (v2[g] - ps->val[b2 * ps->groups + g]);
    if (!is_gain(delta, total)) continue;
    for (int64_t g = 0; g < ps->groups; g++) {
      memcpy(sub + (b1 * ps->groups + g) * nsub, n1 + g * nsub, (size_t)nsub * sizeof(double));
      memcpy(sub + (b2 * ps->groups + g) * nsub, n2 + g * nsub, (size_t)nsub * sizeof(double));
      ps->val[b1 * ps->groups + g] = v1[g];
      ps->val[b2 * ps->groups + g] = v2[g];
    }
    int32_t tmp = ps->row_perm[r1];
    ps->row_perm[r1] = ps->row_perm[r2];
    ps->row_perm[r2] = tmp;
    total += delta;
  }
  sparq_free(work);
}

/* Row phase that re-scores both blocks for every proposal (two-step, or a
 * joint cache that would not fit). */
static void row_phase_rescore(perm_state *ps, int64_t tries, sparq_rng *rng) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ps->nblocks * ps->groups; i++)
    ps->val[i] = value_from_sr(ps, i / ps->groups, i % ps->groups, omp_get_thread_num());
  double *fresh = sparq_alloc((size_t)ps->groups * 2 * sizeof(double), "vnm permute");
  if (!fresh) return;
  double total = table_total(ps);
  const bool parallel = ps->step_cost * 2.0 * (double)ps->groups * ps->v > PARALLEL_MIN_STEPS;
  for (int64_t t = 0; t < tries; t++) {
    int64_t r1 = (int64_t)sparq_rng_below(rng, (uint64_t)ps->rp), r2 = (int64_t)sparq_rng_below(rng, (uint64_t)ps->rp);
    int64_t b1 = r1 / ps->v, b2 = r2 / ps->v;
    if (b1 == b2) continue;
    int32_t tmp = ps->row_perm[r1];
    ps->row_perm[r1] = ps->row_perm[r2];
    ps->row_perm[r2] = tmp;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < 2 * ps->groups; i++)
      fresh[i] = value_from_sr(ps, (i & 1) ? b2 : b1, i >> 1, omp_get_thread_num());
    double delta = 0;
    for (int64_t g = 0; g < ps->groups; g++)
      delta += (fresh[2 * g] - ps->val[b1 * ps->groups + g]) + (fresh[2 * g + 1] - ps->val[b2 * ps->groups + g]);
    if (is_gain(delta, total)) {
      for (int64_t g = 0; g < ps->groups; g++) {
        ps->val[b1 * ps->groups + g] = fresh[2 * g];
        ps->val[b2 * ps->groups + g] = fresh[2 * g + 1];
      }
      total += delta;
    } else {
      ps->row_perm[r2] = ps->row_perm[r1];
      ps->row_perm[r1] = tmp;
    }
  }
  sparq_free(fresh);
}

static void state_free(perm_state *ps) {
  sparq_free(ps->st);
  sparq_free(ps->sr);
  sparq_free(ps->val);
  for (int t = 0; t < ps->nthreads; t++) {
    if (ps->scratch) vnm_block_scratch_free(&ps->scratch[t]);
    if (ps->sbuf) sparq_free(ps->sbuf[t]);
  }
  free(ps->scratch);
  free(ps->sbuf);
}

static sparq_status state_init(perm_state *ps, const char *who) {
  size_t cells = (size_t)ps->rp * (size_t)ps->cp;
  ps->st = sparq_alloc(cells * sizeof(float), who);
  ps->sr = sparq_alloc(cells * sizeof(float), who);
  ps->val = sparq_alloc((size_t)(ps->nblocks * ps->groups) * sizeof(double), who);
  ps->nthreads = omp_get_max_threads();
  ps->scratch = calloc((size_t)ps->nthreads, sizeof *ps->scratch);
  ps->sbuf = calloc((size_t)ps->nthreads, sizeof *ps->sbuf);
  if (!ps->st || !ps->sr || !ps->val || !ps->scratch || !ps->sbuf)
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory for a %lld x %lld search", who, (long long)ps->rp,
                      (long long)ps->cp);
  for (int t = 0; t < ps->nthreads; t++) {
    sparq_status st = vnm_block_scratch_init(&ps->scratch[t], ps->v, ps->m, ps->select, who);
    if (st != SPARQ_OK) return st;
    ps->sbuf[t] = sparq_alloc((size_t)ps->v * (size_t)ps->m * sizeof(double), who);
    if (!ps->sbuf[t]) return SPARQ_ERR_NOMEM;
  }
  return SPARQ_OK;
}

sparq_status sparq_vnm_permute(const float *score, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                               sparq_vnm_select select, const sparq_vnm_permute_opts *opts, int32_t *row_perm,
                               int32_t *col_perm, double *before, double *after) {
  const char *who = "sparq_vnm_permute";
  sparq_status st = vnm_check_problem(who, score, rows, cols, p, NULL, NULL);
  if (st != SPARQ_OK) return st;
  if (select != SPARQ_VNM_SELECT_JOINT && select != SPARQ_VNM_SELECT_TWOSTEP)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown selection %d", who, (int)select);
  sparq_vnm_permute_opts o = opts ? *opts : (sparq_vnm_permute_opts){0};
  if (o.rounds < 0 || o.col_tries < 0 || o.row_tries < 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: negative rounds or tries", who);
  perm_state ps = {.rows = rows, .cols = cols, .v = p.v, .m = p.m, .select = select};
  ps.rp = sparq_vnm_round_up(rows, p.v);
  ps.cp = sparq_vnm_round_up(cols, p.m);
  ps.nblocks = ps.rp / p.v;
  ps.groups = ps.cp / p.m;
  if ((ps.rp > 0 && !row_perm) || (ps.cp > 0 && !col_perm))
    return sparq_fail(SPARQ_ERR_ARG, "%s: NULL permutation output", who);
  for (int64_t i = 0; i < ps.rp; i++) row_perm[i] = (int32_t)i;
  for (int64_t i = 0; i < ps.cp; i++) col_perm[i] = (int32_t)i;
  ps.row_perm = row_perm;
  ps.col_perm = col_perm;
  double base = 0;
  if (ps.rp * ps.cp == 0) {
    if (before) *before = 0;
    if (after) *after = 0;
    return SPARQ_OK;
  }
  uint8_t *mask = sparq_alloc((size_t)(ps.rp * ps.cp), who);
  if (!mask) return SPARQ_ERR_NOMEM;
  if ((st = sparq_vnm_select_mask(score, rows, cols, p, select, NULL, NULL, mask, &base)) != SPARQ_OK) {
    sparq_free(mask);
    return st;
  }
  st = state_init(&ps, who);
  double *sub = NULL;
  int nsub = st == SPARQ_OK ? ps.scratch[0].nsub : 0;
  size_t cache_bytes = (size_t)(ps.nblocks * ps.groups) * (size_t)nsub * sizeof(double);
  if (st == SPARQ_OK && select == SPARQ_VNM_SELECT_JOINT && cache_bytes <= ROW_CACHE_MAX_BYTES)
    sub = sparq_alloc(cache_bytes, who); /* NULL: fall back to re-scoring */
  if (st == SPARQ_OK) {
    /* Rough steps per proposal: a column swap re-scores 2 groups of every
     * block, a row swap 2 rows (cached) or 2 blocks (re-scored) per group. */
    double per_row = (double)p.m * 4 + 40 + (double)nsub * 5;
    ps.step_cost = per_row;
    double col_cost = 2.0 * (double)ps.rp * per_row;
    double row_cost = sub ? (double)ps.groups * 2 * (30 + (double)nsub * 8) : 2.0 * (double)ps.groups * p.v * per_row;
    int64_t col_tries = o.col_tries ? o.col_tries : (int64_t)fmin(4.0 * (double)ps.cp, PHASE_BUDGET / col_cost);
    int64_t row_tries = o.row_tries ? o.row_tries : (int64_t)fmin(8.0 * (double)ps.rp, PHASE_BUDGET / row_cost);
    int rounds = o.rounds ? o.rounds : 2;
    sparq_rng rng = sparq_rng_make(o.seed, 0x564e4d /* "VNM" */);
    for (int round = 0; round < rounds; round++) {
      column_phase(&ps, score, col_tries, &rng);
      build_sr(&ps, score);
      if (sub)
        row_phase_cached(&ps, sub, row_tries, &rng);
      else
        row_phase_rescore(&ps, row_tries, &rng);
    }
  }
  sparq_free(sub);
  state_free(&ps);
  double found = base;
  if (st == SPARQ_OK) st = sparq_vnm_select_mask(score, rows, cols, p, select, row_perm, col_perm, mask, &found);
  sparq_free(mask);
  if (st != SPARQ_OK) return st;
  /* Incremental sums drift by rounding; the canonical recount decides. */
  if (!(found > base)) {
    for (int64_t i = 0; i < ps.rp; i++) row_perm[i] = (int32_t)i;
    for (int64_t i = 0; i < ps.cp; i++) col_perm[i] = (int32_t)i;
    found = base;
  }
  if (before) *before = base;
  if (after) *after = found;
  return SPARQ_OK;
}
