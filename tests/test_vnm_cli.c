/* `sparq prune` then `sparq vnm-matmul` end to end: the packed file holds the
 * original weights at their original places, Y = X * W_masked^T in the
 * original feature order, and the commands give the same bytes at 1 and 2
 * threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "vnm_test_util.h"

#define DIR SPARQ_TEST_TMP "/vnm_cli"
enum { R = 100, C = 90, T = 37 };

static void run(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' %s > /dev/null", SPARQ_CLI, args);
  if (system(cmd) != 0) fail_msg("failed: %s", cmd);
}

static float *read_npy(const char *path, int64_t rows, int64_t cols) {
  sparq_tensor t;
  assert_int_equal(sparq_npy_read(path, &t), SPARQ_OK);
  assert_true(t.dtype == SPARQ_F32 && t.ndim == 2 && t.shape[0] == rows && t.shape[1] == cols);
  return t.data;
}

static void prune_then_matmul(void **state) {
  (void)state;
  assert_int_equal(system("mkdir -p '" DIR "'"), 0);
  sparq_rng rng = sparq_rng_make(51, 0);
  float *w = vnm_random(&rng, R * C, -1, 1), *x = vnm_random(&rng, T * C, -2, 2);
  sparq_tensor tw = {w, SPARQ_F32, 2, {R, C}}, tx = {x, SPARQ_F32, 2, {T, C}};
  assert_int_equal(sparq_npy_write(DIR "/w.npy", &tw), SPARQ_OK);
  assert_int_equal(sparq_npy_write(DIR "/x.npy", &tx), SPARQ_OK);
  for (int threads = 1; threads <= 2; threads++) {
    char args[1024];
    snprintf(args, sizeof args,
             "--threads %d prune --in " DIR "/w.npy --pattern 16:2:6 --score ria --calib " DIR "/x.npy --permute "
             "--permute-tries 300 --out " DIR "/p%d.safetensors --name fc",
             threads, threads);
    run(args);
    snprintf(args, sizeof args, "--threads %d vnm-matmul --w " DIR "/p%d.safetensors --x " DIR "/x.npy --out " DIR
             "/y%d.npy", threads, threads, threads);
    run(args);
  }
  sparq_safetensors *st;
  sparq_vnm_matrix *m;
  assert_int_equal(sparq_safetensors_open(DIR "/p1.safetensors", &st), SPARQ_OK);
  assert_int_equal(sparq_vnm_load(st, "fc", &m), SPARQ_OK);
  sparq_safetensors_close(st);
  float *wm = sparq_alloc(R * C * sizeof(float), "wm");
  assert_int_equal(sparq_vnm_unpack(m, wm, C), SPARQ_OK);
  int kept = 0;
  for (int i = 0; i < R * C; i++) {
    assert_true(wm[i] == 0 || wm[i] == w[i]); /* original places, original values */
    kept += wm[i] != 0;
  }
  assert_true(kept > R * C / 3 - R && kept <= R * C / 3 + R); /* 2 of every 6, padding aside */
  float *y1 = read_npy(DIR "/y1.npy", T, R), *y2 = read_npy(DIR "/y2.npy", T, R);
  assert_memory_equal(y1, y2, T * R * sizeof(float));
  float yd[T * R];
  assert_int_equal(sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, T, R, C, 1, x, C, wm, C, 0, yd, R), SPARQ_OK);
  for (int i = 0; i < T * R; i++) assert_true(fabsf(y1[i] - yd[i]) <= 1e-4f);
  sparq_vnm_free(m);
  sparq_free(w), sparq_free(x), sparq_free(wm), sparq_free(y1), sparq_free(y2);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(prune_then_matmul)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
