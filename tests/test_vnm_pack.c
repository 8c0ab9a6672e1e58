/* The packed V:N:M format (spec §8 test 3): pack/unpack gives the masked
 * dense matrix bit for bit (odd shapes, padding, permutations, NaN and -0
 * weights), the safetensors round trip, and hostile files rejected. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "vnm_test_util.h"

#define TMP SPARQ_TEST_TMP "/vnm_pack"

static int setup(void **state) {
  (void)state;
  return system("mkdir -p '" TMP "'") == 0 ? 0 : -1;
}

/* Random weights with NaN, -0 and an outlier mixed in. */
static float *weights(sparq_rng *rng, int64_t rows, int64_t cols) {
  float *w = vnm_random(rng, (size_t)(rows * cols), -1, 1);
  if (rows * cols > 3) {
    w[0] = NAN;
    w[1] = -0.0f;
    w[rows * cols - 1] = 3e38f;
  }
  return w;
}

/* Chooses a mask (optionally on random permutations), packs, unpacks and
 * compares with the hand-built masked matrix. Returns the packed matrix. */
static sparq_vnm_matrix *pack_case(sparq_rng *rng, const float *w, int64_t rows, int64_t cols, sparq_vnm_pattern p,
                                   bool permute) {
  int64_t rp = sparq_vnm_round_up(rows, p.v), cp = sparq_vnm_round_up(cols, p.m);
  float *s = sparq_alloc((size_t)(rows * cols + 1) * sizeof(float), "score");
  sparq_vnm_score_abs(w, rows, cols, s);
  int32_t *rperm = permute ? vnm_random_perm(rng, rp) : NULL, *cperm = permute ? vnm_random_perm(rng, cp) : NULL;
  uint8_t *mask = sparq_alloc((size_t)(rp * cp + 1), "mask");
  assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_JOINT, rperm, cperm, mask, NULL), SPARQ_OK);
  sparq_vnm_matrix *m;
  assert_int_equal(sparq_vnm_pack(w, rows, cols, cols, p, mask, rperm, cperm, &m), SPARQ_OK);
  assert_int_equal(sparq_vnm_validate(m, "test"), SPARQ_OK);
  assert_true(m->rows == rows && m->cols == cols && m->rows_pad == rp && m->cols_pad == cp);
  float *want = sparq_alloc((size_t)(rows * cols + 1) * sizeof(float), "want");
  float *got = sparq_alloc((size_t)(rows * cols + 1) * sizeof(float), "got");
  vnm_mask_back(w, rows, cols, mask, cp, rp, rperm, cperm, want);
  memset(got, 0x7f, (size_t)(rows * cols) * sizeof(float));
  assert_int_equal(sparq_vnm_unpack(m, got, cols), SPARQ_OK);
  assert_memory_equal(got, want, (size_t)(rows * cols) * sizeof(float));
  sparq_free(s);
  sparq_free(rperm);
  sparq_free(cperm);
  sparq_free(mask);
  sparq_free(want);
  sparq_free(got);
  return m;
}

static void round_trip_is_bit_exact(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(21, 0);
  const struct { int64_t rows, cols; int v, m; } cases[] = {
      {192, 192, 64, 8}, {192, 190, 64, 5}, {37, 53, 16, 6}, {64, 64, 16, 4}, {33, 30, 1, 4}, {17, 9, 4, 5},
      {1, 1, 16, 8},     {50, 20, 8, 16},   {0, 7, 16, 5},   {7, 0, 16, 5}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int permute = 0; permute < 2; permute++) {
      float *w = weights(&rng, cases[i].rows, cases[i].cols);
      sparq_vnm_matrix *m = pack_case(&rng, w, cases[i].rows, cases[i].cols, vnm_pat(cases[i].v, cases[i].m), permute);
      sparq_vnm_free(m);
      sparq_free(w);
    }
}

/* A leading dimension larger than the width packs the same matrix. */
static void strided_weights_and_unpack(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(22, 0);
  const int64_t rows = 20, cols = 15, ld = 19;
  sparq_vnm_pattern p = vnm_pat(4, 5);
  float *w = vnm_random(&rng, (size_t)(rows * ld), -1, 1), *dense = sparq_alloc((size_t)(rows * cols) * 4, "dense");
  for (int64_t i = 0; i < rows; i++) memcpy(dense + i * cols, w + i * ld, (size_t)cols * 4);
  float s[20 * 15];
  sparq_vnm_score_abs(dense, rows, cols, s);
  uint8_t mask[20 * 15];
  assert_int_equal(sparq_vnm_select_mask(s, rows, cols, p, SPARQ_VNM_SELECT_TWOSTEP, NULL, NULL, mask, NULL), SPARQ_OK);
  sparq_vnm_matrix *a, *b;
  assert_int_equal(sparq_vnm_pack(w, rows, cols, ld, p, mask, NULL, NULL, &a), SPARQ_OK);
  assert_int_equal(sparq_vnm_pack(dense, rows, cols, cols, p, mask, NULL, NULL, &b), SPARQ_OK);
  assert_memory_equal(a->values, b->values, (size_t)(a->rows_pad * a->groups * 2) * 4);
  float out[20 * 23];
  for (int k = 0; k < 20 * 23; k++) out[k] = 9;
  assert_int_equal(sparq_vnm_unpack(a, out, 23), SPARQ_OK);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = cols; j < 23; j++) assert_true(out[i * 23 + j] == 9); /* padding untouched */
  assert_int_equal(sparq_vnm_unpack(a, out, 14), SPARQ_ERR_ARG);
  sparq_vnm_free(a);
  sparq_vnm_free(b);
  sparq_free(w);
  sparq_free(dense);
}

static void pack_rejects_bad_input(void **state) {
  (void)state;
  float w[8 * 10] = {0};
  uint8_t mask[8 * 10] = {0};
  sparq_vnm_matrix *m = (sparq_vnm_matrix *)1;
  /* every row needs 2 kept per group */
  assert_int_equal(sparq_vnm_pack(w, 8, 10, 10, vnm_pat(4, 5), mask, NULL, NULL, &m), SPARQ_ERR_ARG);
  assert_null(m);
  assert_non_null(strstr(sparq_last_error(), "sparq_vnm_mask_check"));
  for (int r = 0; r < 8; r++) mask[r * 10] = mask[r * 10 + 1] = mask[r * 10 + 5] = mask[r * 10 + 6] = 1;
  int32_t dup[8] = {0, 1, 2, 3, 4, 5, 6, 6};
  assert_int_equal(sparq_vnm_pack(w, 8, 10, 10, vnm_pat(4, 5), mask, dup, NULL, &m), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "row_perm"));
  assert_int_equal(sparq_vnm_pack(w, 8, 10, 9, vnm_pat(4, 5), mask, NULL, NULL, &m), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_pack(w, 8, 10, 10, vnm_pat(4, 3), mask, NULL, NULL, &m), SPARQ_ERR_ARG);
  assert_int_equal(sparq_vnm_pack(w, 8, 10, 10, vnm_pat(4, 5), mask, NULL, NULL, &m), SPARQ_OK);
  sparq_vnm_free(m);
}

static void assert_same_matrix(const sparq_vnm_matrix *a, const sparq_vnm_matrix *b) {
  assert_true(a->rows == b->rows && a->cols == b->cols && a->groups == b->groups);
  assert_true(a->pattern.v == b->pattern.v && a->pattern.m == b->pattern.m);
  assert_memory_equal(a->values, b->values, (size_t)(a->rows_pad * a->groups * 2) * sizeof(float));
  assert_memory_equal(a->meta, b->meta, (size_t)(a->rows_pad * a->groups));
  assert_memory_equal(a->columns, b->columns, (size_t)(a->column_blocks * a->groups * 4) * sizeof(int32_t));
  assert_memory_equal(a->row_perm, b->row_perm, (size_t)a->rows_pad * sizeof(int32_t));
  assert_memory_equal(a->row_inv, b->row_inv, (size_t)a->rows_pad * sizeof(int32_t));
  assert_memory_equal(a->kpos, b->kpos, (size_t)(a->rows_pad * a->groups) * sizeof(uint16_t));
  assert_memory_equal(a->col_perm, b->col_perm, (size_t)a->cols_pad * sizeof(int32_t));
}

static void save_and_load_round_trip(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(23, 0);
  const struct { int64_t rows, cols; int v, m; } cases[] = {{70, 45, 16, 5}, {33, 30, 1, 4}, {64, 64, 64, 4}};
  for (size_t i = 0; i < 3; i++) {
    float *w = weights(&rng, cases[i].rows, cases[i].cols);
    sparq_vnm_matrix *m = pack_case(&rng, w, cases[i].rows, cases[i].cols, vnm_pat(cases[i].v, cases[i].m), true);
    assert_int_equal(sparq_vnm_save(TMP "/layer.safetensors", "blocks.0.fc1", m), SPARQ_OK);
    sparq_safetensors *st;
    assert_int_equal(sparq_safetensors_open(TMP "/layer.safetensors", &st), SPARQ_OK);
    assert_string_equal(sparq_safetensors_metadata(st, "sparq.vnm"), "blocks.0.fc1");
    char text[32];
    sparq_vnm_pattern_format(m->pattern, text, sizeof text);
    assert_string_equal(sparq_safetensors_metadata(st, "blocks.0.fc1.pattern"), text);
    sparq_vnm_matrix *a, *b;
    assert_int_equal(sparq_vnm_load(st, NULL, &a), SPARQ_OK);
    assert_int_equal(sparq_vnm_load(st, "blocks.0.fc1", &b), SPARQ_OK);
    assert_same_matrix(m, a);
    assert_same_matrix(m, b);
    sparq_vnm_free(a);
    sparq_vnm_free(b);
    assert_int_equal(sparq_vnm_load(st, "blocks.1.fc1", &b), SPARQ_ERR_NOT_FOUND);
    assert_null(b);
    sparq_safetensors_close(st);
    sparq_vnm_free(m);
    sparq_free(w);
  }
}

/* Writes the 7 tensors of a small packed matrix after `corrupt` edits them,
 * then expects sparq_vnm_load to fail with a message naming the file. */
typedef struct parts {
  float values[8 * 2 * 2];
  uint8_t meta[8 * 2];
  int32_t columns[2 * 2 * 4];
  int32_t row_perm[8], col_perm[10];
  int64_t shape[2];
  int32_t pattern[3];
  int64_t values_rows;
} parts;

static void fill_parts(parts *p) {
  for (int i = 0; i < 32; i++) p->values[i] = (float)i;
  for (int i = 0; i < 16; i++) p->meta[i] = 0 | 1 << 2;
  for (int b = 0; b < 2; b++)
    for (int g = 0; g < 2; g++)
      for (int k = 0; k < 4; k++) p->columns[(b * 2 + g) * 4 + k] = g * 5 + k;
  for (int i = 0; i < 8; i++) p->row_perm[i] = i;
  for (int i = 0; i < 10; i++) p->col_perm[i] = i;
  p->shape[0] = 8, p->shape[1] = 10;
  p->pattern[0] = 4, p->pattern[1] = 2, p->pattern[2] = 5;
  p->values_rows = 8;
}

static sparq_status write_and_load(const parts *p, const char *path) {
  sparq_named_tensor t[7] = {
      {"l.vnm.values", {(void *)p->values, SPARQ_F32, 3, {p->values_rows, 2, 2}}},
      {"l.vnm.meta", {(void *)p->meta, SPARQ_U8, 2, {8, 2}}},
      {"l.vnm.columns", {(void *)p->columns, SPARQ_I32, 3, {2, 2, 4}}},
      {"l.vnm.row_perm", {(void *)p->row_perm, SPARQ_I32, 1, {8}}},
      {"l.vnm.col_perm", {(void *)p->col_perm, SPARQ_I32, 1, {10}}},
      {"l.vnm.shape", {(void *)p->shape, SPARQ_I64, 1, {2}}},
      {"l.vnm.pattern", {(void *)p->pattern, SPARQ_I32, 1, {3}}},
  };
  assert_int_equal(sparq_safetensors_write(path, t, 7, NULL, 0), SPARQ_OK);
  sparq_safetensors *st;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  sparq_vnm_matrix *m = NULL;
  sparq_status s = sparq_vnm_load(st, NULL, &m);
  if (s == SPARQ_OK) {
    float dense[80];
    assert_int_equal(sparq_vnm_unpack(m, dense, 10), SPARQ_OK);
  } else {
    assert_null(m);
  }
  sparq_vnm_free(m);
  sparq_safetensors_close(st);
  return s;
}

static void hostile_files_are_rejected(void **state) {
  (void)state;
  const char *path = TMP "/hostile.safetensors";
  parts p;
  fill_parts(&p);
  assert_int_equal(write_and_load(&p, path), SPARQ_OK);
  const char *fragments[] = {"meta[3][1]", "kept column", "kept column", "row_perm", "col_perm", "N must be 2",
                             "logical shape", "l.vnm.values", "l.vnm.values"};
  for (int k = 0; k < 9; k++) {
    fill_parts(&p);
    switch (k) {
      case 0: p.meta[7] = 2 | 1 << 2; break;    /* positions not increasing */
      case 1: p.columns[5] = 7; break;          /* group 1's column in group 0 */
      case 2: p.columns[4 + 3] = 1; break;      /* a repeated column */
      case 3: p.row_perm[3] = 0; break;
      case 4: p.col_perm[9] = 10; break;
      case 5: p.pattern[1] = 3; break;
      case 6: p.shape[0] = -1; break;
      case 7: p.shape[1] = 11; break;           /* tensors no longer match */
      case 8: p.values_rows = 4; break;
    }
    assert_int_equal(write_and_load(&p, path), SPARQ_ERR_FORMAT);
    assert_non_null(strstr(sparq_last_error(), path));
    if (!strstr(sparq_last_error(), fragments[k])) fail_msg("case %d: '%s' lacks '%s'", k, sparq_last_error(), fragments[k]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip_is_bit_exact),
      cmocka_unit_test(strided_weights_and_unpack),
      cmocka_unit_test(pack_rejects_bad_input),
      cmocka_unit_test(save_and_load_round_trip),
      cmocka_unit_test(hostile_files_are_rejected),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
