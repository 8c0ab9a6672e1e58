/* ReLU (PyTorch's nn.ReLU): out = max(x, 0). Backward needs only the sign
 * of the activation, which the forward's output carries as well as its
 * input, so the classifier can run the forward in place and keep one
 * buffer. Both run as chunked parallel maps (elementwise: thread-count
 * independent). */
#include "nn/nn_internal.h"
#include "sparq/nn.h"

/* x < 0 ? 0 : x lets a NaN through, as PyTorch does, so a diverging run
 * shows up in the loss instead of being hidden by the activation. */
static void relu_fwd(float *restrict out, const float *restrict x, const float *unused, size_t n) {
  (void)unused;
  for (size_t i = 0; i < n; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* Same function, but out aliases x (restrict would be a lie there). */
static void relu_fwd_inplace(float *out, const float *x, const float *unused, size_t n) {
  (void)unused;
  for (size_t i = 0; i < n; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void relu_bwd(float *restrict dinp, const float *restrict act, const float *restrict dout, size_t n) {
  for (size_t i = 0; i < n; i++) dinp[i] += act[i] > 0.0f ? dout[i] : 0.0f;
}

void sparq_nn_relu_forward(float *out, const float *inp, size_t n) {
  nn_map_chunks(out == inp ? relu_fwd_inplace : relu_fwd, out, inp, NULL, n);
}

void sparq_nn_relu_backward(float *dinp, const float *act, const float *dout, size_t n) {
  nn_map_chunks(relu_bwd, dinp, act, dout, n);
}
