/* .npy: numpy-written fixtures read back exactly, sparq writes the same
 * bytes numpy.save does, every supported dtype round-trips, and the header
 * parser accepts Python's spellings but nothing looser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <unistd.h>

#include "io_test_util.h"

static void reads_every_fixture_and_writes_it_back(void **state) {
  (void)state;
  cJSON *manifest = io_load_json(IO_FIXTURES "/expected.json");
  assert_non_null(manifest);
  io_mkdir(IO_WRITTEN);
  int files = 0;
  for (const cJSON *e = manifest->child; e; e = e->next) {
    if (strcmp(cJSON_GetObjectItem(e, "format")->valuestring, "npy")) continue;
    const cJSON *want = cJSON_GetObjectItem(e, "tensors")->child;
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/%s", IO_FIXTURES, e->string);
    snprintf(out, sizeof out, "%s/%s", IO_WRITTEN, e->string);
    sparq_tensor t;
    if (sparq_npy_read(path, &t)) fail_msg("%s", sparq_last_error());
    assert_non_null(t.data);
    assert_true(io_tensor_matches(e->string, &t, want));

    size_t size, out_size;
    char *bytes = test_slurp(path, &size);
    sparq_tensor m;
    assert_int_equal(sparq_npy_read_memory(bytes, size, e->string, &m), SPARQ_OK);
    assert_true(io_tensor_matches(e->string, &m, want));
    sparq_tensor_free(&m);

    assert_int_equal(sparq_npy_write(out, &t), SPARQ_OK);
    char *written = test_slurp(out, &out_size);
    /* numpy.save wrote the 1.0 fixtures: sparq must produce the same bytes */
    if (bytes[6] == 1) {
      assert_int_equal(out_size, size);
      assert_memory_equal(written, bytes, size);
    }
    assert_int_equal(written[6], 1);
    sparq_tensor back;
    assert_int_equal(sparq_npy_read(out, &back), SPARQ_OK);
    assert_true(io_tensor_matches(e->string, &back, want));
    sparq_tensor_free(&back);
    free(written);
    free(bytes);
    sparq_tensor_free(&t);
    sparq_tensor_free(&t); /* twice is harmless */
    files++;
  }
  assert_true(files >= 12);
  cJSON_Delete(manifest);
}

static void write_read_every_dtype_bit_exact(void **state) {
  (void)state;
  const char *path = SPARQ_TEST_TMP "/roundtrip.npy";
  for (int d = 0; d < SPARQ_DTYPE_COUNT; d++) {
    sparq_tensor t = {.dtype = (sparq_dtype)d, .ndim = 3, .shape = {3, 1, 7}};
    unsigned char buf[21 * 8];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 97 + (size_t)d);
    t.data = buf;
    sparq_status st = sparq_npy_write(path, &t);
    if (d == SPARQ_BF16 || d == SPARQ_F8_E4M3 || d == SPARQ_F8_E5M2) {
      assert_int_equal(st, SPARQ_ERR_UNSUPPORTED);
      assert_true(io_error_names(path));
      continue;
    }
    assert_int_equal(st, SPARQ_OK);
    sparq_tensor back;
    assert_int_equal(sparq_npy_read(path, &back), SPARQ_OK);
    assert_int_equal(back.dtype, d);
    assert_int_equal(back.ndim, 3);
    assert_int_equal(back.shape[2], 7);
    assert_memory_equal(back.data, buf, 21 * sparq_dtype_size((sparq_dtype)d));
    sparq_tensor_free(&back);
  }
  /* 8 dimensions, a scalar and an empty tensor with NULL data */
  double one = 1.0;
  sparq_tensor shapes[] = {
      {.data = &one, .dtype = SPARQ_F64, .ndim = 8, .shape = {1, 1, 1, 1, 1, 1, 1, 1}},
      {.data = &one, .dtype = SPARQ_F64, .ndim = 0},
      {.data = NULL, .dtype = SPARQ_I64, .ndim = 2, .shape = {0, 1000000}},
  };
  for (size_t k = 0; k < 3; k++) {
    assert_int_equal(sparq_npy_write(path, &shapes[k]), SPARQ_OK);
    sparq_tensor back;
    assert_int_equal(sparq_npy_read(path, &back), SPARQ_OK);
    assert_int_equal(back.ndim, shapes[k].ndim);
    assert_memory_equal(back.shape, shapes[k].shape, sizeof back.shape);
    sparq_tensor_free(&back);
  }
  assert_int_equal(io_count_files(SPARQ_TEST_TMP, ".roundtrip.npy.tmp"), 0);
}

/* Builds a version-1.0 file around `header` and 16 data bytes. */
static size_t make_npy(unsigned char *buf, const char *header, size_t data_bytes) {
  size_t h = strlen(header);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)h;
  buf[9] = (unsigned char)(h >> 8);
  memcpy(buf + 10, header, h);
  memset(buf + 10 + h, 0x3c, data_bytes);
  return 10 + h + data_bytes;
}

static void header_spellings_accepted(void **state) {
  (void)state;
  static const struct {
    const char *header;
    int ndim;
    sparq_dtype dtype;
  } ok[] = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 2, SPARQ_F32},
      {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (4,)}\n", 1, SPARQ_F32},
      {"{'shape':(2,2,),'fortran_order':False,'descr':'<i4'}", 2, SPARQ_I32},
      {"{\n 'descr' : '<u1' ,\n\t'fortran_order' : False ,\r\n 'shape' : ( 16 , ) , }      \n", 1, SPARQ_U8},
      {"{'descr': '|b1', 'fortran_order': False, 'shape': (4, 4)}", 2, SPARQ_BOOL},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (8,)}", 1, SPARQ_F16},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 1)}", 3, SPARQ_F64},
      {"{'descr': '<i8', 'fortran_order': False, 'shape': (2,)}", 1, SPARQ_I64},
      {"{'descr': '|i1', 'fortran_order': False, 'shape': (0, 5)}", 2, SPARQ_I8},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    unsigned char buf[512];
    size_t n = make_npy(buf, ok[i].header, i == 8 ? 0 : 16);
    sparq_tensor t;
    sparq_status st = sparq_npy_read_memory(buf, n, "ok.npy", &t);
    if (st) fail_msg("header %zu: %s", i, sparq_last_error());
    assert_int_equal(t.ndim, ok[i].ndim);
    assert_int_equal(t.dtype, ok[i].dtype);
    sparq_tensor_free(&t);
  }
}

static void header_spellings_refused(void **state) {
  (void)state;
  static const struct {
    const char *header;
    sparq_status status;
  } bad[] = {
      {"", SPARQ_ERR_FORMAT},
      {"{", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } x", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (04,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1_6,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [4], }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (4,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,), }", SPARQ_ERR_FORMAT},
      {"{'descr': \"<f4', 'fortran_order': False, 'shape': (4,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<\\x66\\x34', 'fortran_order': False, 'shape': (4,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), ,}", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", SPARQ_ERR_FORMAT},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", SPARQ_ERR_UNSUPPORTED},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }{", SPARQ_ERR_FORMAT},
      {"{'descr': 'f4', 'fortran_order': False, 'shape': (4,), }", SPARQ_ERR_UNSUPPORTED},
      {"{'descr': '|f4', 'fortran_order': False, 'shape': (4,), }", SPARQ_ERR_UNSUPPORTED},
      {"{'descr': '=f4', 'fortran_order': False, 'shape': (4,), }", SPARQ_ERR_UNSUPPORTED},
      {"{'descr': '<u2', 'fortran_order': False, 'shape': (8,), }", SPARQ_ERR_UNSUPPORTED},
      {"{'descr': '', 'fortran_order': False, 'shape': (4,), }", SPARQ_ERR_UNSUPPORTED},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'shape': (4,)}", SPARQ_ERR_FORMAT},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unsigned char buf[512];
    size_t n = make_npy(buf, bad[i].header, 16);
    sparq_tensor t = {.ndim = 3};
    sparq_status st = sparq_npy_read_memory(buf, n, "bad.npy", &t);
    if (st != bad[i].status) fail_msg("header %zu: status %s: %s", i, sparq_status_name(st), sparq_last_error());
    assert_true(io_error_names("bad.npy"));
    assert_null(t.data);
    assert_int_equal(t.ndim, 0);
  }
  /* short prefixes of a good file never read out of bounds */
  unsigned char buf[512];
  size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16);
  for (size_t k = 0; k < n; k++) {
    sparq_tensor t;
    assert_int_not_equal(sparq_npy_read_memory(buf, k, "cut.npy", &t), SPARQ_OK);
    assert_true(io_error_names("cut.npy"));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_every_fixture_and_writes_it_back),
      cmocka_unit_test(write_read_every_dtype_bit_exact),
      cmocka_unit_test(header_spellings_accepted),
      cmocka_unit_test(header_spellings_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
