/* V:N:M patterns, scores and mask selection (spec §8 tests 1, 2 and 6):
 * parsing, mask diversity and the V/M choice, pattern validity, joint >=
 * two-step, both against brute force on tiny blocks, RIA and the masks
 * against the Python fixture, ties, NaN and bad scores. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "vnm_test_util.h"

static void patterns_parse_and_format(void **state) {
  (void)state;
  sparq_vnm_pattern p;
  assert_int_equal(sparq_vnm_pattern_parse("64:2:8", &p), SPARQ_OK);
  assert_true(p.v == 64 && p.n == 2 && p.m == 8);
  assert_int_equal(sparq_vnm_pattern_parse("2:4", &p), SPARQ_OK);
  assert_true(p.v == 1 && p.n == 2 && p.m == 4);
  char buf[32];
  sparq_vnm_pattern_format(p, buf, sizeof buf);
  assert_string_equal(buf, "2:4");
  sparq_vnm_pattern_format(vnm_pat(16, 5), buf, sizeof buf);
  assert_string_equal(buf, "16:2:5");
  const char *bad[] = {"", "64", "64:2", "64:3:8", "64:2:3", "0:2:8", "64:2:8:1", "a:2:8", "64:2:8x", "-1:2:8",
                       "64:2:65", "99999999999:2:8", "64::8"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(sparq_vnm_pattern_parse(bad[i], &p), SPARQ_ERR_ARG);
    assert_non_null(strstr(sparq_last_error(), "pattern"));
  }
}

static void diversity_matches_the_spec_and_choice_takes_max_k(void **state) {
  (void)state;
  /* ln K values listed in spec §3 */
  const struct { int v, m; double k; } table[] = {{16, 5, .379}, {16, 6, .327}, {16, 8, .257}, {64, 5, .363},
                                                  {64, 6, .306}, {64, 8, .232}, {128, 5, .361}, {128, 8, .228}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    assert_true(fabs(sparq_vnm_log_diversity(vnm_pat(table[i].v, table[i].m)) - table[i].k) < 6e-4);
  /* smaller V and smaller M are less constrained */
  for (int v = 16; v < 128; v *= 2)
    for (int m = 5; m < 8; m++) {
      assert_true(sparq_vnm_log_diversity(vnm_pat(v, m)) > sparq_vnm_log_diversity(vnm_pat(v, m + 1)));
      assert_true(sparq_vnm_log_diversity(vnm_pat(v, m)) > sparq_vnm_log_diversity(vnm_pat(2 * v, m)));
    }
  sparq_vnm_candidate c[] = {{vnm_pat(16, 5), 1.2}, {vnm_pat(64, 5), 1.6}, {vnm_pat(16, 8), 2.6},
                             {vnm_pat(64, 8), 2.9}, {vnm_pat(32, 6), 1.9}, {vnm_pat(64, 6), 2.1}};
  size_t best;
  assert_int_equal(sparq_vnm_choose(c, 6, 1.5, &best), SPARQ_OK);
  assert_int_equal(best, 1); /* 64:2:5 has the largest K among those >= 1.5x */
  assert_int_equal(sparq_vnm_choose(c, 6, 2.0, &best), SPARQ_OK);
  assert_int_equal(best, 5); /* 64:2:6 (.306) beats 16:2:8 (.257) and 64:2:8 */
  assert_int_equal(sparq_vnm_choose(c, 6, 2.7, &best), SPARQ_OK);
  assert_int_equal(best, 3);
  assert_int_equal(sparq_vnm_choose(c, 6, 3.0, &best), SPARQ_ERR_NOT_FOUND);
  assert_non_null(strstr(sparq_last_error(), "2.90x"));
  /* a candidate of the same K wins on speed */
  sparq_vnm_candidate twins[] = {{vnm_pat(64, 8), 2.6}, {vnm_pat(64, 8), 2.8}};
  assert_int_equal(sparq_vnm_choose(twins, 2, 2.5, &best), SPARQ_OK);
  assert_int_equal(best, 1);
}

/* Pattern validity read straight off the mask, independently of
 * sparq_vnm_mask_check: 2 per row and group, the same <= 4 columns for all
 * V rows of a block, density exactly 2/M. */
static void assert_valid_mask(const uint8_t *mask, int64_t rp, int64_t cp, sparq_vnm_pattern p) {
  int64_t kept = 0;
  for (int64_t b = 0; b < rp / p.v; b++)
    for (int64_t g = 0; g < cp / p.m; g++) {
      int used[SPARQ_VNM_MAX_M] = {0}, ncols = 0;
      for (int64_t r = b * p.v; r < (b + 1) * p.v; r++) {
        int n = 0;
        for (int j = 0; j < p.m; j++)
          if (mask[r * cp + g * p.m + j]) n++, used[j] = 1;
        assert_int_equal(n, 2);
        kept += n;
      }
      for (int j = 0; j < p.m; j++) ncols += used[j];
      assert_true(ncols <= 4);
    }
  assert_true(kept * p.m == 2 * rp * cp);
  assert_int_equal(sparq_vnm_mask_check(mask, rp, cp, p), SPARQ_OK);
}

static void masks_are_valid_and_joint_retains_at_least_twostep(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(11, 0);
  const struct { int64_t rows, cols; int v, m; } cases[] = {
      {64, 40, 16, 5}, {192, 192, 64, 8}, {37, 53, 16, 6}, {100, 75, 32, 5}, {17, 9, 1, 4}, {40, 44, 8, 4},
      {5, 3, 4, 5}, {128, 96, 64, 16}, {33, 70, 8, 7}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sparq_vnm_pattern p = vnm_pat(cases[i].v, cases[i].m);
    int64_t rows = cases[i].rows, cols = cases[i].cols;
    int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
    float *s = vnm_random(&rng, (size_t)(rows * cols), 0, 1);
    uint8_t *mj = sparq_alloc((size_t)(rp * cp), "mask"), *mt = sparq_alloc((size_t)(rp * cp), "mask");
    double rj, rt;
    assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, NULL, NULL, mj, &rj), SPARQ_OK);
    assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_TWOSTEP, NULL, NULL, mt, &rt), SPARQ_OK);
    assert_valid_mask(mj, rp, cp, p);
    assert_valid_mask(mt, rp, cp, p);
    assert_true(rj >= rt);
    /* the reported value is the canonical sum over the mask, bit for bit */
    assert_true(rj == sparq_vnm_retained(s, rows, cols, p, NULL, NULL, mj));
    assert_true(rt == sparq_vnm_retained(s, rows, cols, p, NULL, NULL, mt));
    /* M = 4 keeps every column: both rules are each row's 2 best of 4 */
    if (p.m == 4) assert_memory_equal(mj, mt, (size_t)(rp * cp));
    sparq_free(s);
    sparq_free(mj);
    sparq_free(mt);
  }
}

/* All C(m,4) x 6^v masks of one v x m block, the best by total score. */
static double brute_joint(const double *s, int v, int m, uint8_t *best_mask) {
  double best = -1;
  int sub[4];
  static const int pa[6] = {0, 0, 0, 1, 1, 2}, pb[6] = {1, 2, 3, 2, 3, 3};
  for (sub[0] = 0; sub[0] < m; sub[0]++)
    for (sub[1] = sub[0] + 1; sub[1] < m; sub[1]++)
      for (sub[2] = sub[1] + 1; sub[2] < m; sub[2]++)
        for (sub[3] = sub[2] + 1; sub[3] < m; sub[3]++) {
          int choice[8] = {0};
          for (;;) {
            double total = 0;
            for (int r = 0; r < v; r++) total += s[r * m + sub[pa[choice[r]]]] + s[r * m + sub[pb[choice[r]]]];
            if (total > best) {
              best = total;
              memset(best_mask, 0, (size_t)(v * m));
              for (int r = 0; r < v; r++) best_mask[r * m + sub[pa[choice[r]]]] = best_mask[r * m + sub[pb[choice[r]]]] = 1;
            }
            int r = 0;
            while (r < v && ++choice[r] == 6) choice[r++] = 0;
            if (r == v) break;
          }
        }
  return best;
}

/* Two-step by its definition: the 4-subset with the largest column sum
 * (first in lexicographic order), then each row's best pair inside it
 * (first pair in lexicographic order). */
static double brute_twostep(const double *s, int v, int m, uint8_t *mask) {
  double colsum[16] = {0}, best_sum = -1;
  int best[4] = {0};
  for (int r = 0; r < v; r++)
    for (int j = 0; j < m; j++) colsum[j] += s[r * m + j];
  int sub[4];
  for (sub[0] = 0; sub[0] < m; sub[0]++)
    for (sub[1] = sub[0] + 1; sub[1] < m; sub[1]++)
      for (sub[2] = sub[1] + 1; sub[2] < m; sub[2]++)
        for (sub[3] = sub[2] + 1; sub[3] < m; sub[3]++) {
          double t = colsum[sub[0]] + colsum[sub[1]] + colsum[sub[2]] + colsum[sub[3]];
          if (t > best_sum) best_sum = t, memcpy(best, sub, sizeof best);
        }
  memset(mask, 0, (size_t)(v * m));
  double total = 0;
  for (int r = 0; r < v; r++) {
    int ba = 0, bb = 1;
    for (int a = 0; a < 4; a++)
      for (int b = a + 1; b < 4; b++)
        if (s[r * m + best[a]] + s[r * m + best[b]] > s[r * m + best[ba]] + s[r * m + best[bb]]) ba = a, bb = b;
    mask[r * m + best[ba]] = mask[r * m + best[bb]] = 1;
    total += s[r * m + best[ba]] + s[r * m + best[bb]];
  }
  return total;
}

static void both_rules_equal_brute_force_on_tiny_blocks(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(12, 0);
  for (int m = 5; m <= 6; m++)
    for (int trial = 0; trial < 20; trial++) {
      const int v = 4;
      float *s = vnm_random(&rng, (size_t)(v * m), 0, 1);
      /* every third trial draws from 4 levels: ties everywhere */
      if (trial % 3 == 0)
        for (int i = 0; i < v * m; i++) s[i] = (float)(int)(s[i] * 4) / 4;
      double d[64];
      for (int i = 0; i < v * m; i++) d[i] = s[i];
      uint8_t mj[64], mt[64], bj[64], bt[64];
      double rj, rt;
      assert_int_equal(sparq_vnm_select_mask(s, v, m, vnm_pat(v, m), SPARQ_VNM_SELECT_JOINT, NULL, NULL, mj, &rj),
                       SPARQ_OK);
      assert_int_equal(sparq_vnm_select_mask(s, v, m, vnm_pat(v, m), SPARQ_VNM_SELECT_TWOSTEP, NULL, NULL, mt, &rt),
                       SPARQ_OK);
      double best = brute_joint(d, v, m, bj), two = brute_twostep(d, v, m, bt);
      assert_true(fabs(rj - best) <= 1e-12 * best);
      assert_true(fabs(rt - two) <= 1e-12 * two);
      assert_true(rj >= rt);
      assert_memory_equal(mt, bt, (size_t)(v * m));
      if (trial % 3) assert_memory_equal(mj, bj, (size_t)(v * m)); /* unique optimum with distinct scores */
      sparq_free(s);
    }
}

static void ties_go_to_the_lower_column(void **state) {
  (void)state;
  enum { V = 4, M = 8 };
  float s[V * M];
  for (int i = 0; i < V * M; i++) s[i] = 1.0f;
  uint8_t mask[V * M];
  for (int sel = 0; sel < 2; sel++) {
    assert_int_equal(sparq_vnm_select_mask(s, V, M, vnm_pat(V, M), (sparq_vnm_select)sel, NULL, NULL, mask, NULL),
                     SPARQ_OK);
    for (int r = 0; r < V; r++)
      for (int j = 0; j < M; j++) assert_int_equal(mask[r * M + j], j < 2);
  }
  /* column 5 ties column 1 for second place in every row: column 1 wins */
  for (int r = 0; r < V; r++) s[r * M + 0] = 5.0f, s[r * M + 1] = s[r * M + 5] = 3.0f;
  assert_int_equal(sparq_vnm_select_mask(s, V, M, vnm_pat(V, M), SPARQ_VNM_SELECT_JOINT, NULL, NULL, mask, NULL),
                   SPARQ_OK);
  for (int r = 0; r < V; r++) assert_true(mask[r * M + 0] && mask[r * M + 1] && !mask[r * M + 5]);
}

static const sparq_tensor *fixture_tensor(sparq_safetensors *st, const char *name) {
  const sparq_tensor *t;
  assert_int_equal(sparq_safetensors_get(st, name, &t), SPARQ_OK);
  return t;
}

static float *fixture_f32(sparq_safetensors *st, const char *name, size_t *n) {
  const sparq_tensor *t = fixture_tensor(st, name);
  assert_true(sparq_tensor_numel(t, n));
  float *out = sparq_alloc(*n * sizeof(float), name);
  assert_int_equal(sparq_tensor_to_f32(t, out), SPARQ_OK);
  return out;
}

static void ria_and_masks_match_the_python_fixture(void **state) {
  (void)state;
  sparq_safetensors *st;
  assert_int_equal(sparq_safetensors_open(VNM_FIXTURES "/ria.safetensors", &st), SPARQ_OK);
  size_t nw, nx, ns;
  float *w = fixture_f32(st, "w", &nw), *x = fixture_f32(st, "x", &nx), *want = fixture_f32(st, "ria", &ns);
  const int64_t rows = 24, cols = 40, tokens = 33;
  assert_true(nw == (size_t)(rows * cols) && nx == (size_t)(tokens * cols) && ns == nw);
  float norms[40], *got = sparq_alloc(nw * sizeof(float), "ria");
  assert_int_equal(sparq_vnm_column_norms(x, tokens, cols, cols, norms), SPARQ_OK);
  assert_int_equal(sparq_vnm_score_ria(w, rows, cols, norms, 0.5, got), SPARQ_OK);
  for (size_t i = 0; i < nw; i++)
    if (fabs(got[i] - want[i]) > 1e-6 * fabs(want[i]) + 1e-30)
      fail_msg("ria[%zu] = %.9g, fixture %.9g", i, got[i], want[i]);
  /* the zero column scores 0, not NaN */
  for (int64_t i = 0; i < rows; i++) assert_true(got[i * cols + 7] == 0.0f);

  const struct { int v, m; const char *tag; } cases[] = {{8, 5, "8_2_5"}, {16, 8, "16_2_8"}};
  for (size_t c = 0; c < 2; c++)
    for (int sel = 0; sel < 2; sel++) {
      char name[64];
      snprintf(name, sizeof name, "mask_%s_%s", cases[c].tag, sel ? "twostep" : "joint");
      const sparq_tensor *mt = fixture_tensor(st, name);
      sparq_vnm_pattern p = vnm_pat(cases[c].v, cases[c].m);
      int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
      assert_true(mt->shape[0] == rp && mt->shape[1] == cp);
      uint8_t *mask = sparq_alloc((size_t)(rp * cp), "mask");
      double retained;
      assert_int_equal(sparq_vnm_select_mask(want, rows, cols, p, (sparq_vnm_select)sel, NULL, NULL, mask, &retained),
                       SPARQ_OK);
      assert_memory_equal(mask, mt->data, (size_t)(rp * cp));
      snprintf(name, sizeof name, "retained_%s_%s", cases[c].tag, sel ? "twostep" : "joint");
      double ref;
      memcpy(&ref, fixture_tensor(st, name)->data, sizeof ref);
      assert_true(retained == ref);
      sparq_free(mask);
    }
  sparq_free(w);
  sparq_free(x);
  sparq_free(want);
  sparq_free(got);
  sparq_safetensors_close(st);
}

static void nan_inf_and_negative_scores(void **state) {
  (void)state;
  enum { V = 2, M = 5 };
  float s[V * M] = {NAN, 0.1f, 0.2f, 0.3f, 0.4f, NAN, 0.5f, 0.6f, 0.7f, 0.8f};
  uint8_t mask[V * M];
  double retained;
  assert_int_equal(sparq_vnm_select_mask(s, V, M, vnm_pat(V, M), SPARQ_VNM_SELECT_JOINT, NULL, NULL, mask, &retained),
                   SPARQ_OK);
  assert_true(!mask[0] && !mask[5] && isfinite(retained)); /* NaN counts as 0 */
  s[1] = INFINITY;
  assert_int_equal(sparq_vnm_select_mask(s, V, M, vnm_pat(V, M), SPARQ_VNM_SELECT_TWOSTEP, NULL, NULL, mask, &retained),
                   SPARQ_OK);
  assert_true(mask[1] && isfinite(retained)); /* +inf is FLT_MAX: kept, sums stay finite */
  s[7] = -0.5f;
  assert_int_equal(sparq_vnm_select_mask(s, V, M, vnm_pat(V, M), SPARQ_VNM_SELECT_JOINT, NULL, NULL, mask, NULL),
                   SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "score[1][2]"));
  float big[2 * 17] = {0};
  uint8_t bm[2 * 20];
  assert_int_equal(sparq_vnm_select_mask(big, 2, 17, vnm_pat(2, 17), SPARQ_VNM_SELECT_JOINT, NULL, NULL, bm, NULL),
                   SPARQ_ERR_UNSUPPORTED);
  assert_int_equal(sparq_vnm_select_mask(big, 2, 17, vnm_pat(2, 17), SPARQ_VNM_SELECT_TWOSTEP, NULL, NULL, bm, NULL),
                   SPARQ_OK);
  int32_t not_perm[2] = {0, 0};
  assert_int_equal(sparq_vnm_select_mask(s, V, M, vnm_pat(V, M), SPARQ_VNM_SELECT_JOINT, not_perm, NULL, mask, NULL),
                   SPARQ_ERR_ARG);
}

static void mask_check_names_the_violation(void **state) {
  (void)state;
  enum { M = 6 };
  /* 3 rows x 6 columns: rows keep {0,1}, {1,4}, {0,4}: 3 columns used */
  uint8_t mask[3 * M] = {1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0};
  assert_int_equal(sparq_vnm_mask_check(mask, 3, M, vnm_pat(3, M)), SPARQ_OK);
  mask[2 * M + 0] = 0, mask[2 * M + 5] = 1; /* row 2 {4,5}: columns {0,1,4,5} */
  assert_int_equal(sparq_vnm_mask_check(mask, 3, M, vnm_pat(3, M)), SPARQ_OK);
  mask[2 * M + 4] = 0, mask[2 * M + 2] = 1; /* row 2 {2,5}: 5 columns */
  assert_int_equal(sparq_vnm_mask_check(mask, 3, M, vnm_pat(3, M)), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "keeps 5 columns"));
  mask[2 * M + 2] = 0, mask[2 * M + 4] = 1;
  mask[M + 3] = 1; /* row 1 keeps 3 */
  assert_int_equal(sparq_vnm_mask_check(mask, 3, M, vnm_pat(3, M)), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "row 1 keeps 3"));
  mask[M + 3] = 0, mask[M + 4] = 0; /* row 1 keeps 1 */
  assert_int_equal(sparq_vnm_mask_check(mask, 3, M, vnm_pat(3, M)), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "row 1 keeps 1"));
  assert_int_equal(sparq_vnm_mask_check(mask, 3, 5, vnm_pat(3, M)), SPARQ_ERR_ARG); /* not a multiple of M */
}

static void selection_does_not_depend_on_threads(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(13, 0);
  const int64_t rows = 200, cols = 96;
  sparq_vnm_pattern p = vnm_pat(16, 6);
  float *s = vnm_random(&rng, (size_t)(rows * cols), 0, 1);
  int64_t rp = sparq_vnm_round_up(rows, p.v);
  uint8_t *a = sparq_alloc((size_t)(rp * cols), "a"), *b = sparq_alloc((size_t)(rp * cols), "b");
  double ra, rb;
  int saved = sparq_threads();
  sparq_set_threads(1);
  assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, NULL, NULL, a, &ra), SPARQ_OK);
  sparq_set_threads(3);
  assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, NULL, NULL, b, &rb), SPARQ_OK);
  sparq_set_threads(saved);
  assert_memory_equal(a, b, (size_t)(rp * cols));
  assert_true(ra == rb);
  sparq_free(s);
  sparq_free(a);
  sparq_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(patterns_parse_and_format),
      cmocka_unit_test(diversity_matches_the_spec_and_choice_takes_max_k),
      cmocka_unit_test(masks_are_valid_and_joint_retains_at_least_twostep),
      cmocka_unit_test(both_rules_equal_brute_force_on_tiny_blocks),
      cmocka_unit_test(ties_go_to_the_lower_column),
      cmocka_unit_test(ria_and_masks_match_the_python_fixture),
      cmocka_unit_test(nan_inf_and_negative_scores),
      cmocka_unit_test(mask_check_names_the_violation),
      cmocka_unit_test(selection_does_not_depend_on_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
