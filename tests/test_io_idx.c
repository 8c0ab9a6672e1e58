/* IDX: plain and gzip fixtures read back exactly; gzip is found by content;
 * byte order, i16 widening and every truncation point are handled. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <zlib.h>

#include "io_test_util.h"

static void reads_every_fixture(void **state) {
  (void)state;
  cJSON *manifest = io_load_json(IO_FIXTURES "/expected.json");
  assert_non_null(manifest);
  int files = 0;
  for (const cJSON *e = manifest->child; e; e = e->next) {
    if (strcmp(cJSON_GetObjectItem(e, "format")->valuestring, "idx")) continue;
    const cJSON *want = cJSON_GetObjectItem(e, "tensors")->child;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", IO_FIXTURES, e->string);
    sparq_tensor t;
    if (sparq_idx_read(path, &t)) fail_msg("%s", sparq_last_error());
    assert_true(io_tensor_matches(e->string, &t, want));
    assert_int_equal((uintptr_t)t.data % SPARQ_ALIGN, 0);
    sparq_tensor_free(&t);

    size_t size;
    char *bytes = test_slurp(path, &size);
    assert_int_equal(sparq_idx_read_memory(bytes, size, e->string, &t), SPARQ_OK);
    assert_true(io_tensor_matches(e->string, &t, want));
    sparq_tensor_free(&t);
    free(bytes);
    files++;
  }
  assert_true(files >= 16);
  cJSON_Delete(manifest);
}

static void i16_is_widened_to_i32(void **state) {
  (void)state;
  const unsigned char file[] = {0, 0, 0x0B, 1, 0, 0, 0, 3, 0x80, 0x00, 0xFF, 0xFF, 0x01, 0x02};
  sparq_tensor t;
  assert_int_equal(sparq_idx_read_memory(file, sizeof file, "i16.idx", &t), SPARQ_OK);
  assert_int_equal(t.dtype, SPARQ_I32);
  int32_t v[3];
  memcpy(v, t.data, sizeof v);
  assert_int_equal(v[0], -32768);
  assert_int_equal(v[1], -1);
  assert_int_equal(v[2], 258);
  sparq_tensor_free(&t);
}

/* Every proper prefix of a valid file, plain or gzip, is refused with a
 * message naming the file, and never read past its end (ASan checks). */
static void every_prefix_is_refused(void **state) {
  (void)state;
  unsigned char plain[8 + 4 * 2 + 6 * 8];
  memcpy(plain, "\0\0\x0e\x02\0\0\0\x02\0\0\0\x03", 12);
  for (size_t i = 12; i < sizeof plain - 4; i++) plain[i] = (unsigned char)(i * 7);
  size_t plain_n = 12 + 6 * 8;
  unsigned char gz[256];
  z_stream z = {0};
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = plain;
  z.avail_in = (uInt)plain_n;
  z.next_out = gz;
  z.avail_out = sizeof gz;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t gz_n = sizeof gz - z.avail_out;
  deflateEnd(&z);

  sparq_tensor t;
  assert_int_equal(sparq_idx_read_memory(plain, plain_n, "p.idx", &t), SPARQ_OK);
  sparq_tensor_free(&t);
  assert_int_equal(sparq_idx_read_memory(gz, gz_n, "g.idx", &t), SPARQ_OK);
  sparq_tensor_free(&t);
  for (size_t k = 0; k < plain_n; k++) {
    unsigned char *copy = malloc(k + 1); /* exact-size copy so ASan sees overreads */
    memcpy(copy, plain, k);
    assert_int_not_equal(sparq_idx_read_memory(copy, k, "p.idx", &t), SPARQ_OK);
    assert_true(io_error_names("p.idx"));
    assert_null(t.data);
    free(copy);
  }
  for (size_t k = 2; k < gz_n; k++) {
    unsigned char *copy = malloc(k);
    memcpy(copy, gz, k);
    assert_int_equal(sparq_idx_read_memory(copy, k, "g.idx", &t), SPARQ_ERR_FORMAT);
    assert_true(io_error_names("g.idx"));
    free(copy);
  }
}

static void missing_file(void **state) {
  (void)state;
  sparq_tensor t;
  const char *path = SPARQ_TEST_TMP "/missing.idx";
  assert_int_equal(sparq_idx_read(path, &t), SPARQ_ERR_NOT_FOUND);
  assert_true(io_error_names(path));
  assert_int_equal(sparq_idx_read(SPARQ_TEST_TMP, &t), SPARQ_ERR_IO); /* a directory */
  assert_true(io_error_names(SPARQ_TEST_TMP));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_every_fixture),
      cmocka_unit_test(i16_is_widened_to_i32),
      cmocka_unit_test(every_prefix_is_refused),
      cmocka_unit_test(missing_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
