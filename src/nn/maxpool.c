/* 2 x 2 max pooling at stride 2 (PyTorch's nn.MaxPool2d(2), ceil_mode
 * off: an odd last row or column is dropped). Forward keeps the position
 * of each window's maximum so backward routes the gradient there without
 * looking at the input again. The windows do not overlap, so backward
 * writes each input element at most once and the planes are independent:
 * parallel over (n, c) planes, thread-count independent. */
#include <math.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

/* The first maximum in the order (0,0), (0,1), (1,0), (1,1) wins, and a NaN
 * wins over any number (it is propagated, as PyTorch does). */
static void pool_plane(float *restrict out, int32_t *restrict arg, const float *restrict x, int64_t H, int64_t W) {
  const int64_t HO = H / 2, WO = W / 2;
  for (int64_t oy = 0; oy < HO; oy++)
    for (int64_t ox = 0; ox < WO; ox++) {
      const int64_t base = 2 * oy * W + 2 * ox;
      const int64_t at[4] = {base, base + 1, base + W, base + W + 1};
      int64_t best = at[0];
      float m = x[best];
      for (int k = 1; k < 4 && !isnan(m); k++) {
        const float v = x[at[k]];
        if (v > m || isnan(v)) m = v, best = at[k];
      }
      out[oy * WO + ox] = m;
      arg[oy * WO + ox] = (int32_t)best;
    }
}

void sparq_nn_maxpool2_forward(float *out, int32_t *argmax, const float *inp, int64_t N, int64_t C, int64_t H,
                               int64_t W) {
  const int64_t planes = N * C, HO = H / 2, WO = W / 2;
  if (planes <= 0 || HO <= 0 || WO <= 0) return;
#pragma omp parallel if (planes * H * W >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; p++)
      pool_plane(out + p * HO * WO, argmax + p * HO * WO, inp + p * H * W, H, W);
  }
}

void sparq_nn_maxpool2_backward(float *dinp, const float *dout, const int32_t *argmax, int64_t N, int64_t C, int64_t H,
                                int64_t W) {
  const int64_t planes = N * C, HO = H / 2, WO = W / 2, n = HO * WO;
  if (!dinp || planes <= 0 || n <= 0) return;
#pragma omp parallel if (planes * H * W >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
      float *restrict d = dinp + p * H * W;
      const float *restrict g = dout + p * n;
      const int32_t *restrict a = argmax + p * n;
      for (int64_t i = 0; i < n; i++) d[a[i]] += g[i];
    }
  }
}
