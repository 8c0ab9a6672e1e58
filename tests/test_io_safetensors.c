/* safetensors: every Python-written fixture reads back with the expected
 * values, sparq's writer round-trips every dtype bit for bit, writes are
 * atomic, and bad arguments are refused before anything is created. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <unistd.h>

#include "io_test_util.h"

static void compare_with_manifest(const char *fname, const sparq_safetensors *st, const cJSON *e) {
  const cJSON *tensors = cJSON_GetObjectItem(e, "tensors"), *meta = cJSON_GetObjectItem(e, "metadata");
  assert_int_equal(st->count, cJSON_GetArraySize(tensors));
  size_t i = 0;
  for (const cJSON *t = tensors->child; t; t = t->next, i++) {
    assert_string_equal(st->names[i], cJSON_GetObjectItem(t, "name")->valuestring);
    assert_true(io_tensor_matches(fname, &st->tensors[i], t));
    assert_ptr_equal(sparq_safetensors_find(st, st->names[i]), &st->tensors[i]);
  }
  assert_int_equal(st->metadata_count, cJSON_GetArraySize(meta));
  i = 0;
  for (const cJSON *m = meta->child; m; m = m->next, i++) {
    assert_string_equal(sparq_safetensors_metadata(st, m->string), m->valuestring);
    assert_non_null(st->metadata_keys[i]);
  }
}

/* Writes st's tensors and metadata back with sparq, in the same order. */
static void write_back(const sparq_safetensors *st, const char *path) {
  sparq_named_tensor *list = calloc(st->count + 1, sizeof *list);
  sparq_metadata_entry *meta = calloc(st->metadata_count + 1, sizeof *meta);
  for (size_t i = 0; i < st->count; i++) list[i] = (sparq_named_tensor){st->names[i], st->tensors[i]};
  for (size_t i = 0; i < st->metadata_count; i++) meta[i] = (sparq_metadata_entry){st->metadata_keys[i], st->metadata_values[i]};
  assert_int_equal(sparq_safetensors_write(path, list, st->count, meta, st->metadata_count), SPARQ_OK);
  free(list);
  free(meta);
}

static void reads_every_fixture_and_writes_it_back(void **state) {
  (void)state;
  cJSON *manifest = io_load_json(IO_FIXTURES "/expected.json");
  assert_non_null(manifest);
  io_mkdir(IO_WRITTEN);
  int files = 0;
  for (const cJSON *e = manifest->child; e; e = e->next) {
    if (strcmp(cJSON_GetObjectItem(e, "format")->valuestring, "safetensors")) continue;
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/%s", IO_FIXTURES, e->string);
    snprintf(out, sizeof out, "%s/%s", IO_WRITTEN, e->string);
    sparq_safetensors *st = NULL;
    if (sparq_safetensors_open(path, &st)) fail_msg("%s", sparq_last_error());
    compare_with_manifest(e->string, st, e);
    write_back(st, out);

    /* sparq's own file: same tensors, same bytes, same metadata */
    sparq_safetensors *back = NULL;
    if (sparq_safetensors_open(out, &back)) fail_msg("%s", sparq_last_error());
    compare_with_manifest(e->string, back, e);
    for (size_t i = 0; i < st->count; i++) {
      size_t nb;
      assert_true(sparq_tensor_nbytes(&st->tensors[i], &nb));
      if (nb) assert_memory_equal(back->tensors[i].data, st->tensors[i].data, nb);
    }
    sparq_safetensors_close(back);

    /* the memory entry point sees the same file */
    size_t size;
    char *bytes = test_slurp(path, &size);
    sparq_safetensors *mem = NULL;
    assert_int_equal(sparq_safetensors_open_memory(bytes, size, e->string, &mem), SPARQ_OK);
    compare_with_manifest(e->string, mem, e);
    sparq_safetensors_close(mem);
    free(bytes);
    sparq_safetensors_close(st);
    files++;
  }
  assert_true(files >= 5);
  cJSON_Delete(manifest);
}

static void lookup_of_missing_names(void **state) {
  (void)state;
  const char *path = IO_FIXTURES "/st_basic.safetensors";
  sparq_safetensors *st;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  assert_null(sparq_safetensors_find(st, "nope"));
  assert_null(sparq_safetensors_find(st, "__metadata__"));
  assert_null(sparq_safetensors_metadata(st, "nope"));
  const sparq_tensor *t = NULL;
  assert_int_equal(sparq_safetensors_get(st, "nope", &t), SPARQ_ERR_NOT_FOUND);
  assert_null(t);
  assert_true(io_error_names(path));
  assert_non_null(strstr(sparq_last_error(), "'nope'"));
  assert_int_equal(sparq_safetensors_get(st, "weight", &t), SPARQ_OK);
  assert_int_equal(t->dtype, SPARQ_F32);

  /* the copy-out helper handles the byte-aligned view */
  float w[6];
  assert_int_equal(sparq_tensor_to_f32(t, w), SPARQ_OK);
  assert_true(w[0] == 1.5f && w[1] == -2.25f && w[4] == 1.0e38f);
  sparq_safetensors_close(st);
  sparq_safetensors_close(NULL);

  st = (sparq_safetensors *)1;
  assert_int_equal(sparq_safetensors_open(SPARQ_TEST_TMP "/does/not/exist.safetensors", &st), SPARQ_ERR_NOT_FOUND);
  assert_null(st);
  assert_true(io_error_names(SPARQ_TEST_TMP "/does/not/exist.safetensors"));
}

static void unaligned_views_read_correctly(void **state) {
  (void)state;
  sparq_safetensors *st;
  assert_int_equal(sparq_safetensors_open(IO_FIXTURES "/st_unaligned.safetensors", &st), SPARQ_OK);
  const sparq_tensor *f64 = sparq_safetensors_find(st, "f64"), *f32 = sparq_safetensors_find(st, "f32");
  assert_non_null(f64);
  assert_non_null(f32);
  assert_true((uintptr_t)f64->data % 8 != 0); /* the fixture's point */
  float out[3];
  assert_int_equal(sparq_tensor_to_f32(f32, out), SPARQ_OK);
  assert_true(out[0] == 0.5f && out[1] == 0.25f && out[2] == 0.125f);
  assert_int_equal(sparq_tensor_to_f32(f64, out), SPARQ_OK);
  assert_true(out[0] == 1.25f && out[1] == -3.5f);
  sparq_safetensors_close(st);
}

/* Fills n bytes with a pattern that covers every byte value (and so NaN,
 * inf and subnormal encodings of the float types). */
static void fill_pattern(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 151u + seed * 29u + (i >> 8));
}

static void write_read_every_dtype_bit_exact(void **state) {
  (void)state;
  enum { N = 300 };
  sparq_named_tensor list[SPARQ_DTYPE_COUNT + 2];
  unsigned char *bufs[SPARQ_DTYPE_COUNT];
  char names[SPARQ_DTYPE_COUNT][32];
  for (int d = 0; d < SPARQ_DTYPE_COUNT; d++) {
    size_t bytes = N * sparq_dtype_size((sparq_dtype)d);
    bufs[d] = malloc(bytes);
    fill_pattern(bufs[d], bytes, (unsigned)d);
    snprintf(names[d], sizeof names[d], "layer.%d.%s \"q\"\\", d, sparq_dtype_name((sparq_dtype)d));
    list[d] = (sparq_named_tensor){names[d], {.data = bufs[d], .dtype = (sparq_dtype)d, .ndim = 2, .shape = {20, 15}}};
  }
  float scalar = -0.0f;
  list[SPARQ_DTYPE_COUNT] = (sparq_named_tensor){"scalar", {.data = &scalar, .dtype = SPARQ_F32, .ndim = 0}};
  list[SPARQ_DTYPE_COUNT + 1] = (sparq_named_tensor){"empty", {.data = NULL, .dtype = SPARQ_BF16, .ndim = 3, .shape = {2, 0, 5}}};
  sparq_metadata_entry meta[] = {{"format", "pt"}, {"multi\nline", "tab\there \x01 \"quoted\" ünï"}};
  const char *path = SPARQ_TEST_TMP "/all_dtypes.safetensors";
  assert_int_equal(sparq_safetensors_write(path, list, SPARQ_DTYPE_COUNT + 2, meta, 2), SPARQ_OK);

  sparq_safetensors *st;
  if (sparq_safetensors_open(path, &st)) fail_msg("%s", sparq_last_error());
  assert_int_equal(st->count, SPARQ_DTYPE_COUNT + 2);
  for (int d = 0; d < SPARQ_DTYPE_COUNT + 2; d++) {
    assert_string_equal(st->names[d], list[d].name);
    const sparq_tensor *t = &st->tensors[d];
    assert_int_equal(t->dtype, list[d].tensor.dtype);
    assert_int_equal(t->ndim, list[d].tensor.ndim);
    assert_memory_equal(t->shape, list[d].tensor.shape, sizeof t->shape[0] * (size_t)t->ndim);
    size_t nb;
    assert_true(sparq_tensor_nbytes(t, &nb));
    if (nb) assert_memory_equal(t->data, list[d].tensor.data, nb);
  }
  assert_string_equal(sparq_safetensors_metadata(st, "multi\nline"), meta[1].value);
  sparq_safetensors_close(st);

  /* the header is padded so the data region starts 8-byte aligned */
  size_t size;
  unsigned char *raw = (unsigned char *)test_slurp(path, &size);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
  assert_int_equal(hlen % 8, 0);
  assert_int_equal(raw[8], '{');
  free(raw);
  for (int d = 0; d < SPARQ_DTYPE_COUNT; d++) free(bufs[d]);
  assert_int_equal(io_count_files(SPARQ_TEST_TMP, ".all_dtypes.safetensors.tmp"), 0);
}

static void write_refuses_bad_arguments(void **state) {
  (void)state;
  const char *path = SPARQ_TEST_TMP "/refused.safetensors";
  unlink(path);
  float x[2] = {1, 2};
  sparq_tensor ok = {.data = x, .dtype = SPARQ_F32, .ndim = 1, .shape = {2}};
  struct {
    sparq_named_tensor t[2];
    size_t n;
    sparq_metadata_entry m[2];
    size_t nm;
  } cases[] = {
      {{{"a", ok}, {"a", ok}}, 2, {{0}}, 0},                                        /* duplicate names */
      {{{"", ok}}, 1, {{0}}, 0},                                                    /* empty name */
      {{{"__metadata__", ok}}, 1, {{0}}, 0},                                        /* reserved name */
      {{{"bad\xff", ok}}, 1, {{0}}, 0},                                             /* not UTF-8 */
      {{{NULL, ok}}, 1, {{0}}, 0},                                                  /* no name */
      {{{"a", {.data = NULL, .dtype = SPARQ_F32, .ndim = 1, .shape = {2}}}}, 1, {{0}}, 0},
      {{{"a", {.data = x, .dtype = SPARQ_F32, .ndim = 9}}}, 1, {{0}}, 0},
      {{{"a", {.data = x, .dtype = SPARQ_F32, .ndim = 1, .shape = {-1}}}}, 1, {{0}}, 0},
      {{{"a", {.data = x, .dtype = (sparq_dtype)99, .ndim = 1, .shape = {1}}}}, 1, {{0}}, 0},
      {{{"a", {.data = x, .dtype = SPARQ_F64, .ndim = 3, .shape = {INT64_MAX, INT64_MAX, 2}}}}, 1, {{0}}, 0},
      {{{"a", ok}}, 1, {{"k", "v"}, {"k", "w"}}, 2},                               /* duplicate metadata key */
      {{{"a", ok}}, 1, {{"k", NULL}}, 1},                                           /* NULL value */
      {{{"a", ok}}, 1, {{"k", "\xc0\x80"}}, 1},                                     /* overlong UTF-8 */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sparq_status st = sparq_safetensors_write(path, cases[i].t, cases[i].n, cases[i].m, cases[i].nm);
    if (st != SPARQ_ERR_ARG) fail_msg("case %zu: status %s (%s)", i, sparq_status_name(st), sparq_last_error());
    assert_true(io_error_names(path));
    assert_int_equal(access(path, F_OK), -1);
  }
  assert_int_equal(io_count_files(SPARQ_TEST_TMP, ".refused.safetensors.tmp"), 0);
}

static void write_into_missing_directory_fails_cleanly(void **state) {
  (void)state;
  const char *path = SPARQ_TEST_TMP "/no_such_dir/x.safetensors";
  float x = 1;
  sparq_named_tensor t = {"x", {.data = &x, .dtype = SPARQ_F32, .ndim = 0}};
  sparq_status st = sparq_safetensors_write(path, &t, 1, NULL, 0);
  assert_true(st == SPARQ_ERR_NOT_FOUND || st == SPARQ_ERR_IO);
  assert_true(io_error_names(path));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_every_fixture_and_writes_it_back),
      cmocka_unit_test(lookup_of_missing_names),
      cmocka_unit_test(unaligned_views_read_correctly),
      cmocka_unit_test(write_read_every_dtype_bit_exact),
      cmocka_unit_test(write_refuses_bad_arguments),
      cmocka_unit_test(write_into_missing_directory_fails_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
