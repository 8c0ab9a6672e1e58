/* SiLU's backward against central differences in double, and the
 * sinusoidal embedding against its defining formula. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sparq/nn.h"

static void silu_backward_matches_finite_differences(void **state) {
  (void)state;
  enum { N = 41 };
  float x[N], dout[N], dx[N] = {0}, y[N];
  for (int i = 0; i < N; i++) x[i] = -10.0f + 0.5f * (float)i, dout[i] = 0.25f + 0.01f * (float)i;
  sparq_nn_silu_forward(y, x, N);
  sparq_nn_silu_backward(dx, x, dout, N);
  for (int i = 0; i < N; i++) {
    const double xd = x[i], h = 1e-5;
    const double f1 = (xd + h) / (1.0 + exp(-(xd + h))), f0 = (xd - h) / (1.0 + exp(-(xd - h)));
    const double want = dout[i] * (f1 - f0) / (2 * h);
    assert_true(fabs(dx[i] - want) <= 1e-5 * (1.0 + fabs(want)));
    assert_true(fabs(y[i] - xd / (1.0 + exp(-xd))) <= 1e-6 * (1.0 + fabs(xd)));
  }
  /* accumulates */
  sparq_nn_silu_backward(dx, x, dout, N);
  float once[N] = {0};
  sparq_nn_silu_backward(once, x, dout, N);
  for (int i = 0; i < N; i++) assert_float_equal(dx[i], 2.0f * once[i], 1e-6f * (1.0f + fabsf(once[i])));
}

static void timestep_embedding_follows_dit_layout(void **state) {
  (void)state;
  const float t[3] = {0.0f, 17.0f, 999.0f};
  float out[3 * 7];
  sparq_nn_timestep_embedding(out, t, 3, 7, 10000.0f);
  for (int n = 0; n < 3; n++) {
    for (int i = 0; i < 3; i++) {
      const double f = exp(-log(10000.0) * i / 3.0);
      assert_true(fabs(out[n * 7 + i] - cos(t[n] * f)) < 1e-5);
      assert_true(fabs(out[n * 7 + 3 + i] - sin(t[n] * f)) < 1e-5);
    }
    assert_true(out[n * 7 + 6] == 0.0f);
  }
  assert_true(out[0] == 1.0f && out[3] == 0.0f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(silu_backward_matches_finite_differences),
      cmocka_unit_test(timestep_embedding_follows_dit_layout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
