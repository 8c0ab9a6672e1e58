/* Video PSNR and box-window SSIM (spec sparse-videogen.md §6, test 6). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sparq/sparq.h"
#include "sparq/eval.h"

static void test_identical_videos(void **state) {
  (void)state;
  const int64_t F = 3, C = 2, H = 13, W = 9, n = F * C * H * W;
  float *a = malloc((size_t)n * sizeof(float));
  sparq_rng rng = sparq_rng_make(1, 0);
  sparq_rng_fill_uniform(&rng, a, (size_t)n, 0.0f, 1.0f);
  double psnr = 0, ssim = 0;
  assert_int_equal(sparq_video_psnr(a, a, F, C, H, W, &psnr), SPARQ_OK);
  assert_true(psnr == SPARQ_PSNR_CAP);
  assert_int_equal(sparq_video_ssim(a, a, F, C, H, W, &ssim), SPARQ_OK);
  assert_true(ssim == 1.0);
  free(a);
}

/* A constant offset of 0.1: MSE 0.01 in every frame, so PSNR is 20 dB. */
static void test_known_noise_psnr(void **state) {
  (void)state;
  const int64_t F = 2, C = 1, H = 4, W = 5, n = F * C * H * W;
  float a[40], b[40];
  for (int64_t i = 0; i < n; i++) a[i] = 0.5f, b[i] = 0.5f + 0.1f;
  double psnr = 0;
  assert_int_equal(sparq_video_psnr(a, b, F, C, H, W, &psnr), SPARQ_OK);
  double mse = (double)(0.6f - 0.5f) * (double)(0.6f - 0.5f);
  assert_true(fabs(psnr - 10 * log10(1 / mse)) < 1e-9);
  assert_true(fabs(psnr - 20.0) < 1e-4);
  /* mean of per-frame PSNR, not PSNR of the mean MSE: frame 0 exact (cap), frame 1 20 dB */
  for (int64_t i = 0; i < 20; i++) b[i] = a[i];
  assert_int_equal(sparq_video_psnr(a, b, F, C, H, W, &psnr), SPARQ_OK);
  assert_true(fabs(psnr - (SPARQ_PSNR_CAP + 10 * log10(1 / mse)) / 2) < 1e-9);
}

/* One pixel: the 11 x 11 window holds it and 120 padded zeros, so every
 * statistic is the pixel's value over 121. */
static void test_one_pixel_ssim_by_hand(void **state) {
  (void)state;
  const float x = 0.5f, y = 0.6f;
  double ssim = 0;
  assert_int_equal(sparq_video_ssim(&x, &y, 1, 1, 1, 1, &ssim), SPARQ_OK);
  double ux = 0.5 / 121, uy = (double)y / 121;
  double vx = 0.25 / 121 - ux * ux, vy = (double)y * y / 121 - uy * uy, cov = 0.5 * y / 121 - ux * uy;
  double c1 = 1e-4, c2 = 9e-4;
  double want = (2 * ux * uy + c1) * (2 * cov + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  assert_true(fabs(ssim - want) < 1e-12);
  assert_true(ssim < 1.0);
}

static void test_bad_arguments(void **state) {
  (void)state;
  float a = 0;
  double r;
  assert_int_equal(sparq_video_psnr(&a, NULL, 1, 1, 1, 1, &r), SPARQ_ERR_ARG);
  assert_int_equal(sparq_video_ssim(&a, &a, 0, 1, 1, 1, &r), SPARQ_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identical_videos),
      cmocka_unit_test(test_known_noise_psnr),
      cmocka_unit_test(test_one_pixel_ssim_by_hand),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
