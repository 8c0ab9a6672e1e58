/* sparq_vnm_prune: score -> (permutation search) -> mask -> packed matrix. */
#include "kernels/vnm_internal.h"
#include "sparq/base.h"

sparq_status sparq_vnm_prune(const float *w, int64_t rows, int64_t cols, const float *score,
                             const sparq_vnm_prune_opts *opts, sparq_vnm_matrix **out,
                             sparq_vnm_prune_report *report) {
  const char *who = "sparq_vnm_prune";
  if (!opts || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL options or output", who);
  *out = NULL;
  const sparq_vnm_pattern p = opts->pattern;
  sparq_status st = sparq_vnm_pattern_check(p, who);
  if (st != SPARQ_OK) return st;
  size_t n;
  if (rows < 0 || cols < 0 || !sparq_size_mul((size_t)rows, (size_t)cols, &n))
    return sparq_fail(SPARQ_ERR_ARG, "%s: bad shape %lld x %lld", who, (long long)rows, (long long)cols);
  if (n > 0 && !w) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL weights", who);
  int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
  float *abs_score = NULL;
  if (!score) {
    abs_score = sparq_alloc((n + 1) * sizeof(float), "sparq_vnm_prune scores");
    if (!abs_score) return SPARQ_ERR_NOMEM;
    sparq_vnm_score_abs(w, rows, cols, abs_score);
    score = abs_score;
  }
  uint8_t *mask = sparq_alloc((size_t)(rp * cp) + 1, "sparq_vnm_prune mask");
  int32_t *row_perm = opts->permute ? sparq_alloc(((size_t)rp + 1) * sizeof(int32_t), "sparq_vnm_prune row_perm") : NULL;
  int32_t *col_perm = opts->permute ? sparq_alloc(((size_t)cp + 1) * sizeof(int32_t), "sparq_vnm_prune col_perm") : NULL;
  sparq_vnm_prune_report rep = {0};
  if (!mask || (opts->permute && (!row_perm || !col_perm))) {
    st = SPARQ_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) rep.total += vnm_clean(score[i]);
  if (opts->permute) {
    double t0 = sparq_now();
    st = sparq_vnm_permute(score, rows, cols, p, opts->select, &opts->permute_opts, row_perm, col_perm,
                           &rep.retained_plain, NULL);
    rep.seconds_permute = sparq_now() - t0;
    if (st != SPARQ_OK) goto done;
  }
  st = sparq_vnm_select_mask(score, rows, cols, p, opts->select, row_perm, col_perm, mask, &rep.retained);
  if (st != SPARQ_OK) goto done;
  if (!opts->permute) rep.retained_plain = rep.retained;
  st = sparq_vnm_pack(w, rows, cols, cols, p, mask, row_perm, col_perm, out);
done:
  sparq_free(abs_score);
  sparq_free(mask);
  sparq_free(row_perm);
  sparq_free(col_perm);
  if (st == SPARQ_OK && report) *report = rep;
  return st;
}
