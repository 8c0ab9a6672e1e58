/* The sinusoidal embedding of a scalar (diffusion time, GFT's 1000 beta, a
 * consistency model's second time) in DiT's TimestepEmbedder layout:
 * [cos(t f_0) .. cos(t f_{h-1}), sin(t f_0) .. sin(t f_{h-1})] (then a 0
 * when dim is odd), f_i = max_period^(-i/h), h = dim / 2. The arguments are
 * formed in double, so large t (1000 beta, 250 ln sigma) loses no phase. */
#include <math.h>
#include <string.h>

#include "sparq/nn.h"

void sparq_nn_timestep_embedding(float *out, const float *t, int64_t N, int64_t dim, float max_period) {
  const int64_t half = dim / 2;
  const double log_period = log((double)max_period);
  for (int64_t n = 0; n < N; n++) {
    float *row = out + n * dim;
    for (int64_t i = 0; i < half; i++) {
      /* PyTorch forms the frequency in FP32; rounding it to float keeps the
       * phases equal to the reference's for every t */
      const float freq = (float)exp(-log_period * (double)i / (double)half);
      const double arg = (double)t[n] * (double)freq;
      row[i] = (float)cos(arg);
      row[half + i] = (float)sin(arg);
    }
    if (dim % 2) row[dim - 1] = 0.0f;
  }
}
