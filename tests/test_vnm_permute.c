/* V:N:M channel permutation (spec §8 test 5): the search never lowers the
 * retained score, reports the canonical value, returns true permutations
 * that map back exactly, gains where gains are obvious, and does not depend
 * on the thread count; plus the sparq_vnm_prune report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vnm_test_util.h"

static void assert_permutation(const int32_t *p, int64_t n) {
  uint8_t *seen = sparq_calloc((size_t)n + 1, 1, "seen");
  for (int64_t i = 0; i < n; i++) {
    assert_true(p[i] >= 0 && p[i] < n && !seen[p[i]]);
    seen[p[i]] = 1;
  }
  sparq_free(seen);
}

static void never_lowers_the_objective(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(41, 0);
  const struct { int64_t rows, cols; int v, m, sel; } cases[] = {
      {64, 80, 16, 5, 0}, {64, 80, 16, 5, 1}, {70, 45, 16, 8, 0}, {128, 64, 64, 6, 1},
      {33, 21, 8, 4, 0},  {40, 40, 1, 4, 1},  {16, 5, 16, 5, 0},  {32, 70, 16, 16, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sparq_vnm_pattern p = vnm_pat(cases[i].v, cases[i].m);
    int64_t rows = cases[i].rows, cols = cases[i].cols;
    int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
    float *s = vnm_random(&rng, (size_t)(rows * cols), 0, 1);
    /* heavy-tailed scores: some channels matter much more than others */
    for (int64_t k = 0; k < rows * cols; k++) s[k] = s[k] * s[k] * s[k];
    int32_t *rperm = sparq_alloc((size_t)rp * 4, "r"), *cperm = sparq_alloc((size_t)cp * 4, "c");
    sparq_vnm_permute_opts o = {.rounds = 2, .col_tries = 400, .row_tries = 400, .seed = i};
    sparq_vnm_select sel = (sparq_vnm_select)cases[i].sel;
    double before, after;
    assert_int_equal(sparq_vnm_permute(s, rows, cols, p, sel, &o, rperm, cperm, &before, &after), SPARQ_OK);
    assert_true(after >= before);
    assert_permutation(rperm, rp);
    assert_permutation(cperm, cp);
    /* the reported values are the canonical retained scores */
    uint8_t *mask = sparq_alloc((size_t)(rp * cp), "mask");
    double plain, permuted;
    assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, sel, NULL, NULL, mask, &plain), SPARQ_OK);
    assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, sel, rperm, cperm, mask, &permuted), SPARQ_OK);
    assert_true(plain == before && permuted == after);
    assert_true(permuted == sparq_vnm_retained(s, rows, cols, p, rperm, cperm, mask));
    sparq_free(s), sparq_free(rperm), sparq_free(cperm), sparq_free(mask);
  }
}

/* Eight loud columns in one group of eight: without moving them only 4 can
 * survive per row block; spread over groups, all of them can. */
static void gains_where_columns_crowd_one_group(void **state) {
  (void)state;
  const int64_t rows = 32, cols = 64;
  sparq_vnm_pattern p = vnm_pat(16, 8);
  float *s = sparq_alloc((size_t)(rows * cols) * 4, "s");
  sparq_rng rng = sparq_rng_make(42, 0);
  sparq_rng_fill_uniform(&rng, s, (size_t)(rows * cols), 0, 0.01f);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < 8; c++) s[r * cols + c] = 1;
  int32_t rperm[32], cperm[64];
  double before, after;
  sparq_vnm_permute_opts o = {.rounds = 2, .col_tries = 2000, .row_tries = 100, .seed = 1};
  assert_int_equal(sparq_vnm_permute(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, &o, rperm, cperm, &before, &after),
                   SPARQ_OK);
  /* each row keeps 2 of the loud columns at first (64 of the 256 loud
   * entries, plus at most 14 small ones of < 0.01 per row) */
  assert_true(before < 64 + 32 * 14 * 0.01 && after > 1.9 * before);
  sparq_free(s);
}

/* The permutations, applied to a matrix and then inverted, give it back;
 * packed with them, the weights unpack to the original positions. */
static void permutations_map_back_exactly(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(43, 0);
  const int64_t rows = 48, cols = 60;
  sparq_vnm_pattern p = vnm_pat(16, 6);
  float *w = vnm_random(&rng, (size_t)(rows * cols), -1, 1), *s = sparq_alloc((size_t)(rows * cols) * 4, "s");
  sparq_vnm_score_abs(w, rows, cols, s);
  int32_t rperm[48], cperm[60];
  assert_int_equal(sparq_vnm_permute(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, NULL, rperm, cperm, NULL, NULL),
                   SPARQ_OK);
  float wp[48 * 60], back[48 * 60];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) wp[r * cols + c] = w[rperm[r] * cols + cperm[c]];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) back[rperm[r] * cols + cperm[c]] = wp[r * cols + c];
  assert_memory_equal(back, w, sizeof back);
  /* all-kept check through the packed format: every kept weight sits at its original place */
  uint8_t mask[48 * 60];
  assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, rperm, cperm, mask, NULL), SPARQ_OK);
  sparq_vnm_matrix *m;
  assert_int_equal(sparq_vnm_pack(w, rows, cols, cols, p, mask, rperm, cperm, &m), SPARQ_OK);
  float un[48 * 60];
  assert_int_equal(sparq_vnm_unpack(m, un, cols), SPARQ_OK);
  int kept = 0;
  for (int64_t k = 0; k < rows * cols; k++) {
    assert_true(un[k] == 0 || un[k] == w[k]);
    kept += un[k] != 0;
  }
  assert_int_equal(kept, rows * cols * 2 / p.m);
  sparq_vnm_free(m);
  sparq_free(w), sparq_free(s);
}

static void same_result_for_any_thread_count(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(44, 0);
  const int64_t rows = 64, cols = 96;
  sparq_vnm_pattern p = vnm_pat(16, 8);
  float *s = vnm_random(&rng, (size_t)(rows * cols), 0, 1);
  int32_t r1[64], c1[96], r2[64], c2[96];
  double a1, a2;
  int saved = sparq_threads();
  sparq_set_threads(1);
  assert_int_equal(sparq_vnm_permute(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, NULL, r1, c1, NULL, &a1), SPARQ_OK);
  sparq_set_threads(3);
  assert_int_equal(sparq_vnm_permute(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, NULL, r2, c2, NULL, &a2), SPARQ_OK);
  sparq_set_threads(saved);
  assert_memory_equal(r1, r2, sizeof r1);
  assert_memory_equal(c1, c2, sizeof c1);
  assert_true(a1 == a2);
  sparq_free(s);
}

static void prune_reports_and_errors(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(45, 0);
  const int64_t rows = 64, cols = 64;
  float *w = vnm_random(&rng, (size_t)(rows * cols), -1, 1);
  sparq_vnm_prune_opts o = {.pattern = vnm_pat(16, 8), .select = SPARQ_VNM_SELECT_JOINT, .permute = true};
  sparq_vnm_matrix *m;
  sparq_vnm_prune_report rep;
  assert_int_equal(sparq_vnm_prune(w, rows, cols, NULL, &o, &m, &rep), SPARQ_OK);
  double total = 0;
  for (int64_t k = 0; k < rows * cols; k++) total += fabs((double)w[k]);
  assert_true(fabs(rep.total - total) < 1e-9 * total);
  assert_true(rep.retained >= rep.retained_plain && rep.retained_plain > 0.25 * total && rep.retained < total);
  /* the packed matrix holds exactly the retained score */
  float *un = sparq_alloc((size_t)(rows * cols) * 4, "un");
  assert_int_equal(sparq_vnm_unpack(m, un, cols), SPARQ_OK);
  double kept = 0;
  for (int64_t k = 0; k < rows * cols; k++) kept += fabs((double)un[k]);
  assert_true(fabs(kept - rep.retained) < 1e-9 * total);
  sparq_vnm_free(m);
  o.pattern = vnm_pat(16, 17);
  assert_int_equal(sparq_vnm_prune(w, rows, cols, NULL, &o, &m, &rep), SPARQ_ERR_UNSUPPORTED);
  o.pattern = vnm_pat(16, 3);
  assert_int_equal(sparq_vnm_prune(w, rows, cols, NULL, &o, &m, &rep), SPARQ_ERR_ARG);
  sparq_vnm_permute_opts bad = {.rounds = -1};
  int32_t rp[64], cp[64];
  sparq_vnm_score_abs(w, rows, cols, un);
  assert_int_equal(sparq_vnm_permute(un, rows, cols, vnm_pat(16, 8), SPARQ_VNM_SELECT_JOINT, &bad, rp, cp, NULL, NULL),
                   SPARQ_ERR_ARG);
  sparq_free(w), sparq_free(un);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(never_lowers_the_objective),
      cmocka_unit_test(gains_where_columns_crowd_one_group),
      cmocka_unit_test(permutations_map_back_exactly),
      cmocka_unit_test(same_result_for_any_thread_count),
      cmocka_unit_test(prune_reports_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
