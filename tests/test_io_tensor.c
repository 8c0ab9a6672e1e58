/* sparq_tensor basics (dtype table, sizes, element access, conversion to
 * float) and format detection by content. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "io_test_util.h"

static void dtype_table(void **state) {
  (void)state;
  static const size_t sizes[SPARQ_DTYPE_COUNT] = {8, 4, 2, 2, 1, 1, 8, 4, 1, 1, 1};
  for (int d = 0; d < SPARQ_DTYPE_COUNT; d++) {
    assert_int_equal(sparq_dtype_size((sparq_dtype)d), sizes[d]);
    sparq_dtype back;
    assert_true(sparq_dtype_from_name(sparq_dtype_name((sparq_dtype)d), &back));
    assert_int_equal(back, d);
  }
  sparq_dtype x;
  assert_false(sparq_dtype_from_name("f32", &x)); /* names are case-sensitive, as in safetensors */
  assert_false(sparq_dtype_from_name("", &x));
  assert_false(sparq_dtype_from_name(NULL, &x));
  assert_int_equal(sparq_dtype_size(SPARQ_DTYPE_COUNT), 0);
  assert_string_equal(sparq_dtype_name((sparq_dtype)-1), "?");
}

static void numel_and_nbytes(void **state) {
  (void)state;
  size_t n;
  sparq_tensor t = {.dtype = SPARQ_F64, .ndim = 0};
  assert_true(sparq_tensor_numel(&t, &n));
  assert_int_equal(n, 1);
  t.ndim = 3, t.shape[0] = 2, t.shape[1] = 0, t.shape[2] = 5;
  assert_true(sparq_tensor_nbytes(&t, &n));
  assert_int_equal(n, 0);
  t.shape[1] = INT64_MAX, t.shape[2] = 3;
  assert_false(sparq_tensor_numel(&t, &n));
  t.ndim = 1, t.shape[0] = (int64_t)(SIZE_MAX / 4);
  assert_true(sparq_tensor_numel(&t, &n));
  assert_false(sparq_tensor_nbytes(&t, &n)); /* * 8 overflows */
  t.shape[0] = -1;
  assert_false(sparq_tensor_numel(&t, &n));
  t.ndim = 9;
  assert_false(sparq_tensor_numel(&t, &n));
  t.ndim = 1, t.shape[0] = 1, t.dtype = SPARQ_DTYPE_COUNT;
  assert_false(sparq_tensor_nbytes(&t, &n));
}

static void get_and_to_f32_every_dtype(void **state) {
  (void)state;
  /* one element per dtype at an odd address: reads must not assume alignment */
  unsigned char buf[1 + 8];
  struct {
    sparq_dtype dtype;
    unsigned char bytes[8];
    double want;
  } cases[] = {
      {SPARQ_F64, {0, 0, 0, 0, 0, 0, 0xF8, 0x3F}, 1.5},
      {SPARQ_F32, {0, 0, 0x20, 0xC0}, -2.5},
      {SPARQ_F16, {0x00, 0x3C}, 1.0},
      {SPARQ_BF16, {0x80, 0xBF}, -1.0},
      {SPARQ_F8_E4M3, {0x38}, 1.0},
      {SPARQ_F8_E5M2, {0xBC}, -1.0},
      {SPARQ_I64, {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, -2.0},
      {SPARQ_I32, {0x00, 0x00, 0x00, 0x80}, -2147483648.0},
      {SPARQ_I8, {0x80}, -128.0},
      {SPARQ_U8, {0xFF}, 255.0},
      {SPARQ_BOOL, {0x02}, 1.0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(buf + 1, cases[i].bytes, 8);
    sparq_tensor t = {.data = buf + 1, .dtype = cases[i].dtype, .ndim = 1, .shape = {1}};
    assert_true(sparq_tensor_get(&t, 0) == cases[i].want);
    float f;
    assert_int_equal(sparq_tensor_to_f32(&t, &f), SPARQ_OK);
    assert_true(f == (float)cases[i].want);
  }
  sparq_tensor bad = {.data = buf, .dtype = SPARQ_DTYPE_COUNT, .ndim = 1, .shape = {1}};
  float f;
  assert_int_equal(sparq_tensor_to_f32(&bad, &f), SPARQ_ERR_ARG);
  sparq_tensor null_data = {.data = NULL, .dtype = SPARQ_F32, .ndim = 1, .shape = {1}};
  assert_int_equal(sparq_tensor_to_f32(&null_data, &f), SPARQ_ERR_ARG);
  sparq_tensor empty = {.data = NULL, .dtype = SPARQ_F32, .ndim = 1, .shape = {0}};
  assert_int_equal(sparq_tensor_to_f32(&empty, &f), SPARQ_OK);
  sparq_tensor_free(&empty);
  sparq_tensor_free(NULL);
}

static void detect_format_by_content(void **state) {
  (void)state;
  static const struct {
    const char *file;
    sparq_file_format want;
  } cases[] = {
      {IO_FIXTURES "/st_basic.safetensors", SPARQ_FORMAT_SAFETENSORS},
      {IO_FIXTURES "/st_no_tensors.safetensors", SPARQ_FORMAT_SAFETENSORS},
      {IO_FIXTURES "/npy_f4.npy", SPARQ_FORMAT_NPY},
      {IO_FIXTURES "/npy_v3.npy", SPARQ_FORMAT_NPY},
      {IO_FIXTURES "/idx_labels_u8.idx", SPARQ_FORMAT_IDX},
      {IO_FIXTURES "/idx_f64.idx", SPARQ_FORMAT_IDX},
      {IO_FIXTURES "/idx_labels_u8.idx.gz", SPARQ_FORMAT_IDX_GZ},
      {IO_FIXTURES "/idx_gzip_no_ext.idx", SPARQ_FORMAT_IDX_GZ},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sparq_file_format f;
    assert_int_equal(sparq_detect_file_format(cases[i].file, &f), SPARQ_OK);
    assert_int_equal(f, cases[i].want);
  }
  /* an IDX file whose first data byte is '{' is still IDX: its "header
   * length" would be absurd */
  const unsigned char idx_brace[] = {0, 0, 8, 1, 0, 0, 0, 1, '{'};
  assert_int_equal(sparq_detect_format(idx_brace, sizeof idx_brace), SPARQ_FORMAT_IDX);
  assert_int_equal(sparq_detect_format("", 0), SPARQ_FORMAT_UNKNOWN);
  assert_int_equal(sparq_detect_format("hello world, not a tensor", 25), SPARQ_FORMAT_UNKNOWN);
  sparq_file_format f;
  assert_int_equal(sparq_detect_file_format(IO_FIXTURES "/expected.json", &f), SPARQ_ERR_FORMAT);
  assert_true(io_error_names(IO_FIXTURES "/expected.json"));
  assert_int_equal(sparq_detect_file_format(SPARQ_TEST_TMP "/nope", &f), SPARQ_ERR_NOT_FOUND);
  assert_true(io_error_names(SPARQ_TEST_TMP "/nope"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dtype_table),
      cmocka_unit_test(numel_and_nbytes),
      cmocka_unit_test(get_and_to_f32_every_dtype),
      cmocka_unit_test(detect_format_by_content),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
