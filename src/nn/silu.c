/* SiLU (x * sigmoid(x), PyTorch's nn.SiLU), the activation of DiT's
 * conditioning MLPs and of the 2-D toy denoiser. It runs on small tensors
 * (a few floats per sample), so a plain loop is enough. */
#include <math.h>

#include "sparq/nn.h"

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

void sparq_nn_silu_forward(float *out, const float *inp, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = inp[i] * sigmoid(inp[i]);
}

/* d/dx x s(x) = s(x) (1 + x (1 - s(x))) */
void sparq_nn_silu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float s = sigmoid(inp[i]);
    dinp[i] += dout[i] * s * (1.0f + inp[i] * (1.0f - s));
  }
}
