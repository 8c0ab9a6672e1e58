/* Typed metadata reads, the parameters-only export (F32/F16/BF16 round
 * trips through the checkpoint loader) and the shipped-model lookup. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/sparq.h"

static void typed_metadata_reads(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/meta-typed.safetensors", SPARQ_TEST_TMP);
  float x = 1.0f;
  sparq_named_tensor t = {"x", {.data = &x, .dtype = SPARQ_F32, .ndim = 1, .shape = {1}}};
  const sparq_metadata_entry meta[] = {{"depth", "12"}, {"ratio", "2.5"}, {"bad_int", "12x"},
                                       {"bad_float", "nan"}, {"neg", "-3"}};
  assert_int_equal(sparq_safetensors_write(path, &t, 1, meta, 5), SPARQ_OK);
  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  int64_t i = 0;
  float f = 0;
  assert_int_equal(sparq_safetensors_metadata_int(st, "depth", true, &i), SPARQ_OK);
  assert_int_equal(i, 12);
  assert_int_equal(sparq_safetensors_metadata_int(st, "neg", true, &i), SPARQ_OK);
  assert_int_equal(i, -3);
  assert_int_equal(sparq_safetensors_metadata_float(st, "ratio", true, &f), SPARQ_OK);
  assert_true(f == 2.5f);
  /* optional and missing: untouched */
  i = 77, f = 7.0f;
  assert_int_equal(sparq_safetensors_metadata_int(st, "missing", false, &i), SPARQ_OK);
  assert_int_equal(sparq_safetensors_metadata_float(st, "missing", false, &f), SPARQ_OK);
  assert_int_equal(i, 77);
  assert_true(f == 7.0f);
  assert_int_equal(sparq_safetensors_metadata_int(st, "missing", true, &i), SPARQ_ERR_FORMAT);
  assert_non_null(strstr(sparq_last_error(), "metadata has no 'missing'"));
  assert_int_equal(sparq_safetensors_metadata_int(st, "bad_int", true, &i), SPARQ_ERR_FORMAT);
  assert_non_null(strstr(sparq_last_error(), "'bad_int' = '12x' is not an integer"));
  assert_int_equal(sparq_safetensors_metadata_float(st, "bad_float", true, &f), SPARQ_ERR_FORMAT);
  assert_int_equal(sparq_safetensors_metadata_float(st, "depth", true, &f), SPARQ_OK); /* "12" is a number */
  sparq_safetensors_close(st);
}

static void params_export_round_trips(void **state) {
  (void)state;
  sparq_param_list pl = {0};
  const int64_t a[2] = {3, 5}, b[1] = {7};
  assert_int_equal(sparq_params_add(&pl, "w", 2, a), SPARQ_OK);
  assert_int_equal(sparq_params_add(&pl, "b", 1, b), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(&pl), SPARQ_OK);
  sparq_rng rng = sparq_rng_make(3, 0);
  for (size_t k = 0; k < pl.count; k++) sparq_rng_fill_normal(&rng, pl.items[k].data, pl.items[k].numel, 0, 1);
  const sparq_dtype kinds[3] = {SPARQ_F32, SPARQ_F16, SPARQ_BF16};
  const double tol[3] = {0.0, 1.0 / 1024, 1.0 / 128};
  const sparq_metadata_entry meta[] = {{"model", "test"}};
  for (int d = 0; d < 3; d++) {
    char path[512];
    snprintf(path, sizeof path, "%s/export-%d.safetensors", SPARQ_TEST_TMP, d);
    assert_int_equal(sparq_params_export(path, &pl, kinds[d], meta, 1), SPARQ_OK);
    sparq_param_list back = {0};
    assert_int_equal(sparq_params_add(&back, "w", 2, a), SPARQ_OK);
    assert_int_equal(sparq_params_add(&back, "b", 1, b), SPARQ_OK);
    assert_int_equal(sparq_params_allocate(&back), SPARQ_OK);
    sparq_safetensors *st = NULL;
    assert_int_equal(sparq_checkpoint_load(path, &back, NULL, &st), SPARQ_OK);
    assert_string_equal(sparq_safetensors_metadata(st, "model"), "test");
    assert_non_null(sparq_safetensors_metadata(st, "format"));
    assert_int_equal(sparq_safetensors_find(st, "w")->dtype, kinds[d]);
    sparq_safetensors_close(st);
    for (size_t k = 0; k < pl.count; k++)
      for (size_t i = 0; i < pl.items[k].numel; i++) {
        const double want = pl.items[k].data[i], got = back.items[k].data[i];
        assert_true(fabs(got - want) <= tol[d] * fabs(want));
      }
    sparq_params_free(&back);
  }
  assert_int_equal(sparq_params_export("/x.safetensors", &pl, SPARQ_I8, NULL, 0), SPARQ_ERR_ARG);
  sparq_params_free(&pl);
}

static void shipped_models_are_found(void **state) {
  (void)state;
  char path[4096];
  assert_int_equal(sparq_shipped_model_path("fmnist-classifier.safetensors", path, sizeof path), SPARQ_OK);
  assert_non_null(strstr(path, "fmnist-classifier.safetensors"));
  assert_int_equal(sparq_shipped_model_path("dit-fmnist.safetensors", path, sizeof path), SPARQ_OK);
  assert_int_equal(sparq_shipped_model_path("no-such-model.safetensors", path, sizeof path), SPARQ_ERR_NOT_FOUND);
  assert_non_null(strstr(sparq_last_error(), "no-such-model.safetensors"));
  char tiny[8];
  assert_int_equal(sparq_shipped_model_path("fmnist-classifier.safetensors", tiny, sizeof tiny), SPARQ_ERR_NOT_FOUND);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(typed_metadata_reads),
      cmocka_unit_test(params_export_round_trips),
      cmocka_unit_test(shipped_models_are_found),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
