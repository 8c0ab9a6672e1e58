/* sparq_vnm_gemm (spec §8 test 4): equal to sparq_sgemm on the masked dense
 * matrix (<= 1e-5 relative) and to the scalar reference, for V in {16, 64},
 * M in {4, 5, 8}, T in {1, 7, 64, 256}, odd shapes, several group chunks,
 * permutations, every ISA level; NaN reaching exactly the rows that keep its
 * column; results independent of the thread count; argument errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "num_test_util.h"
#include "vnm_test_util.h"

/* "Relative" error of one output: against sum |w x| over its row, the
 * scale FP32 accumulation error grows with (outputs near 0 after
 * cancellation have no meaningful relative error of their own). */
static void assert_close(const float *got, const float *want, const float *scale, int64_t tokens, int64_t rows,
                         int64_t ldy, const char *what) {
  for (int64_t t = 0; t < tokens; t++)
    for (int64_t r = 0; r < rows; r++) {
      double d = fabs((double)got[t * ldy + r] - (double)want[t * rows + r]);
      double tol = 1e-5 * (double)scale[t * rows + r] + 1e-30;
      if (!(d <= tol))
        fail_msg("%s: y[%lld][%lld] = %.9g, expected %.9g (scale %g)", what, (long long)t, (long long)r,
                 got[t * ldy + r], want[t * rows + r], scale[t * rows + r]);
    }
}

typedef struct dense_ref {
  float *y;     /* X * W_masked^T via sparq_sgemm, tokens x rows */
  float *scale; /* |X| * |W_masked|^T */
} dense_ref;

static dense_ref dense_product(const float *x, const float *wm, int64_t tokens, int64_t rows, int64_t cols) {
  size_t ny = (size_t)(tokens * rows + 1), nw = (size_t)(rows * cols + 1), nx = (size_t)(tokens * cols + 1);
  dense_ref d = {sparq_alloc(ny * 4, "y dense"), sparq_alloc(ny * 4, "scale")};
  float *ax = sparq_alloc(nx * 4, "|x|"), *aw = sparq_alloc(nw * 4, "|w|");
  for (size_t i = 0; i + 1 < nx; i++) ax[i] = fabsf(x[i]);
  for (size_t i = 0; i + 1 < nw; i++) aw[i] = fabsf(wm[i]);
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, tokens, rows, cols, 1, x, cols, wm, cols, 0, d.y, rows),
                   SPARQ_OK);
  assert_int_equal(
      sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, tokens, rows, cols, 1, ax, cols, aw, cols, 0, d.scale, rows), SPARQ_OK);
  sparq_free(ax);
  sparq_free(aw);
  return d;
}

static sparq_vnm_matrix *prune(const float *w, int64_t rows, int64_t cols, sparq_vnm_pattern p, bool permute) {
  sparq_vnm_prune_opts o = {.pattern = p, .select = SPARQ_VNM_SELECT_JOINT, .permute = permute,
                            .permute_opts = {.rounds = 1, .col_tries = 200, .row_tries = 200, .seed = 5}};
  sparq_vnm_matrix *m;
  assert_int_equal(sparq_vnm_prune(w, rows, cols, NULL, &o, &m, NULL), SPARQ_OK);
  return m;
}

/* Kernel vs dense GEMM on the unpacked matrix and vs the reference. */
static void check_case(sparq_rng *rng, int64_t rows, int64_t cols, int64_t tokens, sparq_vnm_pattern p, bool permute) {
  float *w = vnm_random(rng, (size_t)(rows * cols), -1, 1), *x = vnm_random(rng, (size_t)(tokens * cols), -1, 1);
  if (rows * cols > 2) w[rows * cols / 2] = 1e4f; /* an outlier weight */
  if (tokens * cols > 2) x[tokens * cols / 3] = -3e3f;
  sparq_vnm_matrix *m = prune(w, rows, cols, p, permute);
  float *wm = sparq_alloc((size_t)(rows * cols + 1) * 4, "masked");
  assert_int_equal(sparq_vnm_unpack(m, wm, cols), SPARQ_OK);
  dense_ref d = dense_product(x, wm, tokens, rows, cols);
  float *y = sparq_alloc((size_t)(tokens * rows + 1) * 4, "y"), *yr = sparq_alloc((size_t)(tokens * rows + 1) * 4, "yr");
  char what[128];
  snprintf(what, sizeof what, "%lldx%lld T=%lld %d:2:%d%s isa=%s", (long long)rows, (long long)cols, (long long)tokens,
           p.v, p.m, permute ? " permuted" : "", sparq_isa_name(sparq_isa_active()));
  assert_int_equal(sparq_vnm_gemm(m, tokens, x, cols, y, rows), SPARQ_OK);
  assert_int_equal(sparq_vnm_gemm_ref(m, tokens, x, cols, yr, rows), SPARQ_OK);
  assert_close(y, d.y, d.scale, tokens, rows, rows, what);
  assert_close(y, yr, d.scale, tokens, rows, rows, what);
  sparq_vnm_free(m);
  sparq_free(w);
  sparq_free(x);
  sparq_free(wm);
  sparq_free(d.y);
  sparq_free(d.scale);
  sparq_free(y);
  sparq_free(yr);
}

static void matches_dense_gemm_over_the_grid(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(31, 0);
  sparq_isa levels[3];
  int nlevels = isa_levels(levels);
  const int vs[2] = {16, 64}, ms[3] = {4, 5, 8};
  const int64_t ts[4] = {1, 7, 64, 256};
  for (int l = 0; l < nlevels; l++) {
    sparq_set_isa_cap(levels[l]);
    for (int iv = 0; iv < 2; iv++)
      for (int im = 0; im < 3; im++)
        for (int it = 0; it < 4; it++) {
          int v = vs[iv], m = ms[im];
          check_case(&rng, 2 * v, 12 * m, ts[it], vnm_pat(v, m), false);    /* exact multiples */
          check_case(&rng, 2 * v + 3, 9 * m + 2, ts[it], vnm_pat(v, m), false); /* padded */
        }
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
}

static void odd_shapes_chunks_and_permutations(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(32, 0);
  sparq_isa levels[3];
  int nlevels = isa_levels(levels);
  for (int l = 0; l < nlevels; l++) {
    sparq_set_isa_cap(levels[l]);
    check_case(&rng, 70, 1100, 300, vnm_pat(16, 5), false); /* 220 groups: two chunks of accumulation */
    check_case(&rng, 192, 192, 100, vnm_pat(64, 8), false);
    check_case(&rng, 1, 3, 5, vnm_pat(16, 5), false);
    check_case(&rng, 45, 33, 77, vnm_pat(1, 4), false);     /* plain 2:4, rows not a multiple of anything */
    check_case(&rng, 130, 84, 65, vnm_pat(64, 5), true);
    check_case(&rng, 40, 600, 129, vnm_pat(16, 4), true);   /* 2:4 with an input permutation */
    check_case(&rng, 48, 70, 33, vnm_pat(16, 7), true);
    check_case(&rng, 9, 23, 5, vnm_pat(1, 5), true);        /* every row its own block */
    check_case(&rng, 130, 40, 20, vnm_pat(128, 8), false);  /* mostly padding rows */
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
}

/* Spec §8.4: with permutations on, the output is X times the ORIGINAL
 * weight under the mask found in permuted order and mapped back. */
static void permuted_mask_maps_back(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(33, 0);
  const int64_t rows = 96, cols = 80, tokens = 50;
  sparq_vnm_pattern p = vnm_pat(16, 8);
  int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
  float *w = vnm_random(&rng, (size_t)(rows * cols), -1, 1), *x = vnm_random(&rng, (size_t)(tokens * cols), -1, 1);
  float *s = sparq_alloc((size_t)(rows * cols) * 4, "s");
  sparq_vnm_score_abs(w, rows, cols, s);
  int32_t *rperm = sparq_alloc((size_t)rp * 4, "rperm"), *cperm = sparq_alloc((size_t)cp * 4, "cperm");
  sparq_vnm_permute_opts o = {.rounds = 2, .col_tries = 300, .row_tries = 300, .seed = 9};
  double before, after;
  assert_int_equal(sparq_vnm_permute(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, &o, rperm, cperm, &before, &after),
                   SPARQ_OK);
  assert_true(after > before); /* random scores leave room to gain */
  uint8_t *mask = sparq_alloc((size_t)(rp * cp), "mask");
  assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, rperm, cperm, mask, NULL), SPARQ_OK);
  float *wm = sparq_alloc((size_t)(rows * cols) * 4, "wm");
  vnm_mask_back(w, rows, cols, mask, cp, rp, rperm, cperm, wm);
  sparq_vnm_matrix *m;
  assert_int_equal(sparq_vnm_pack(w, rows, cols, cols, p, mask, rperm, cperm, &m), SPARQ_OK);
  dense_ref d = dense_product(x, wm, tokens, rows, cols);
  float *y = sparq_alloc((size_t)(tokens * rows) * 4, "y");
  assert_int_equal(sparq_vnm_gemm(m, tokens, x, cols, y, rows), SPARQ_OK);
  assert_close(y, d.y, d.scale, tokens, rows, rows, "permuted");
  sparq_vnm_free(m);
  sparq_free(w), sparq_free(x), sparq_free(s), sparq_free(rperm), sparq_free(cperm), sparq_free(mask);
  sparq_free(wm), sparq_free(d.y), sparq_free(d.scale), sparq_free(y);
}

/* A NaN in X reaches exactly the outputs whose row keeps its column; an
 * inf in a column no row of a block keeps changes nothing there. */
static void nan_reaches_exactly_the_rows_that_keep_its_column(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(34, 0);
  const int64_t rows = 64, cols = 40, tokens = 20, bad_t = 3, bad_c = 17;
  sparq_isa levels[3];
  int nlevels = isa_levels(levels);
  float *w = vnm_random(&rng, (size_t)(rows * cols), 0.5f, 1), *x = vnm_random(&rng, (size_t)(tokens * cols), -1, 1);
  sparq_vnm_matrix *m = prune(w, rows, cols, vnm_pat(16, 8), true);
  float *wm = sparq_alloc((size_t)(rows * cols) * 4, "wm"), *y = sparq_alloc((size_t)(tokens * rows) * 4, "y");
  assert_int_equal(sparq_vnm_unpack(m, wm, cols), SPARQ_OK);
  x[bad_t * cols + bad_c] = NAN;
  x[(bad_t + 1) * cols + bad_c] = INFINITY;
  for (int l = 0; l < nlevels; l++) {
    sparq_set_isa_cap(levels[l]);
    assert_int_equal(sparq_vnm_gemm(m, tokens, x, cols, y, rows), SPARQ_OK);
    int nan_rows = 0;
    for (int64_t t = 0; t < tokens; t++)
      for (int64_t r = 0; r < rows; r++) {
        bool keeps = wm[r * cols + bad_c] != 0; /* weights are >= 0.5: kept means nonzero */
        bool hit = (t == bad_t || t == bad_t + 1) && keeps;
        assert_true(hit ? !isfinite(y[t * rows + r]) : isfinite(y[t * rows + r]));
        nan_rows += t == bad_t && hit;
      }
    assert_true(nan_rows > 0 && nan_rows < rows);
  }
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  sparq_vnm_free(m);
  sparq_free(w), sparq_free(x), sparq_free(wm), sparq_free(y);
}

static void threads_and_leading_dimensions(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(35, 0);
  const int64_t rows = 200, cols = 330, tokens = 150, ldx = 337, ldy = 211;
  float *w = vnm_random(&rng, (size_t)(rows * cols), -1, 1), *x = vnm_random(&rng, (size_t)(tokens * ldx), -1, 1);
  for (int64_t t = 0; t < tokens; t++)
    for (int64_t c = cols; c < ldx; c++) x[t * ldx + c] = NAN; /* never read */
  sparq_vnm_matrix *m = prune(w, rows, cols, vnm_pat(32, 6), true);
  float *y[3];
  int saved = sparq_threads();
  for (int k = 0; k < 3; k++) {
    y[k] = sparq_alloc((size_t)(tokens * ldy) * 4, "y");
    for (int64_t i = 0; i < tokens * ldy; i++) y[k][i] = -7;
    sparq_set_threads(k + 1);
    assert_int_equal(sparq_vnm_gemm(m, tokens, x, ldx, y[k], ldy), SPARQ_OK);
  }
  sparq_set_threads(saved);
  assert_memory_equal(y[0], y[1], (size_t)(tokens * ldy) * 4);
  assert_memory_equal(y[0], y[2], (size_t)(tokens * ldy) * 4);
  for (int64_t t = 0; t < tokens; t++) {
    for (int64_t r = 0; r < rows; r++) assert_true(isfinite(y[0][t * ldy + r]));
    for (int64_t r = rows; r < ldy; r++) assert_true(y[0][t * ldy + r] == -7);
  }
  sparq_vnm_free(m);
  sparq_free(w), sparq_free(x);
  for (int k = 0; k < 3; k++) sparq_free(y[k]);
}

static void argument_errors(void **state) {
  (void)state;
  float w[32 * 10] = {0}, x[10] = {0}, y[32];
  sparq_vnm_matrix *m = prune(w, 32, 10, vnm_pat(16, 5), false);
  assert_int_equal(sparq_vnm_gemm(NULL, 1, x, 10, y, 32), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_gemm(m, -1, x, 10, y, 32), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_gemm(m, 1, x, 9, y, 32), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "ldx 9"));
  assert_int_equal(sparq_vnm_gemm(m, 1, x, 10, y, 31), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_gemm(m, 1, NULL, 10, y, 32), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_gemm(m, 0, NULL, 10, NULL, 32), SPARQ_OK);
  assert_int_equal(sparq_vnm_gemm_ref(m, 1, x, 9, y, 32), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_gemm(m, 1, x, 10, y, 32), SPARQ_OK);
  for (int i = 0; i < 32; i++) assert_true(y[i] == 0);
  sparq_vnm_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(matches_dense_gemm_over_the_grid),
      cmocka_unit_test(odd_shapes_chunks_and_permutations),
      cmocka_unit_test(permuted_mask_maps_back),
      cmocka_unit_test(nan_reaches_exactly_the_rows_that_keep_its_column),
      cmocka_unit_test(threads_and_leading_dimensions),
      cmocka_unit_test(argument_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
