/* The two per-sample conditioning layers of an adaLN-Zero block (DiT):
 *   modulate        out = x (1 + scale_b) + shift_b
 *   gated residual  out = x + gate_b y
 * where shift_b, scale_b, gate_b are one sample's chunks of the block's
 * adaLN output, broadcast over that sample's T tokens. The arithmetic order
 * is PyTorch's (1 + scale first, then the product, then the sum).
 *
 * Forwards are parallel over token rows. Backwards are parallel over
 * samples: a thread owns sample b's T rows and its entries of the shift,
 * scale or gate gradients, summed over t in order, so the results do not
 * depend on the thread count. These loops are memory-bound; the portable
 * vectorization is enough. */
#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

static void modulate_row(float *out, const float *x, const float *restrict shift, const float *restrict scale,
                         int64_t C) {
  for (int64_t c = 0; c < C; c++) out[c] = x[c] * (1.0f + scale[c]) + shift[c];
}

void sparq_nn_modulate_forward(float *out, const float *inp, const float *shift, const float *scale, int64_t ld,
                               int64_t B, int64_t T, int64_t C) {
  const int64_t N = B * T;
  if (B <= 0 || T <= 0 || C <= 0) return;
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const int64_t b = n / T;
      modulate_row(out + n * C, inp + n * C, shift + b * ld, scale + b * ld, C);
    }
  }
}

/* One sample's T rows: dinp += dout (1 + scale), dshift += sum_t dout,
 * dscale += sum_t dout x. */
static void modulate_backward_sample(float *restrict dinp, float *restrict dshift, float *restrict dscale,
                                     const float *restrict dout, const float *restrict x,
                                     const float *restrict scale, int64_t T, int64_t C) {
  for (int64_t t = 0; t < T; t++) {
    const float *restrict g = dout + t * C, *restrict xr = x + t * C;
    if (dinp) {
      float *restrict d = dinp + t * C;
      for (int64_t c = 0; c < C; c++) d[c] += g[c] * (1.0f + scale[c]);
    }
    if (dshift)
      for (int64_t c = 0; c < C; c++) dshift[c] += g[c];
    if (dscale)
      for (int64_t c = 0; c < C; c++) dscale[c] += g[c] * xr[c];
  }
}

void sparq_nn_modulate_backward(float *dinp, float *dshift, float *dscale, const float *dout, const float *inp,
                                const float *scale, int64_t ld, int64_t B, int64_t T, int64_t C) {
  if (B <= 0 || T <= 0 || C <= 0) return;
#pragma omp parallel if (B * T * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; b++) {
      const int64_t r = b * T * C;
      modulate_backward_sample(dinp ? dinp + r : NULL, dshift ? dshift + b * ld : NULL,
                               dscale ? dscale + b * ld : NULL, dout + r, inp + r, scale + b * ld, T, C);
    }
  }
}

static void gated_row(float *out, const float *x, const float *restrict gate, const float *restrict y, int64_t C) {
  for (int64_t c = 0; c < C; c++) out[c] = x[c] + gate[c] * y[c];
}

void sparq_nn_gated_residual_forward(float *out, const float *x, const float *gate, const float *y, int64_t ld,
                                     int64_t B, int64_t T, int64_t C) {
  const int64_t N = B * T;
  if (B <= 0 || T <= 0 || C <= 0) return;
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) gated_row(out + n * C, x + n * C, gate + (n / T) * ld, y + n * C, C);
  }
}

/* One sample's T rows: dx += dout, dy += dout gate, dgate += sum_t dout y. */
static void gated_backward_sample(float *restrict dx, float *restrict dgate, float *restrict dy,
                                  const float *restrict dout, const float *restrict gate, const float *restrict y,
                                  int64_t T, int64_t C) {
  for (int64_t t = 0; t < T; t++) {
    const float *restrict g = dout + t * C, *restrict yr = y + t * C;
    if (dx) {
      float *restrict d = dx + t * C;
      for (int64_t c = 0; c < C; c++) d[c] += g[c];
    }
    if (dy) {
      float *restrict d = dy + t * C;
      for (int64_t c = 0; c < C; c++) d[c] += g[c] * gate[c];
    }
    if (dgate)
      for (int64_t c = 0; c < C; c++) dgate[c] += g[c] * yr[c];
  }
}

void sparq_nn_gated_residual_backward(float *dx, float *dgate, float *dy, const float *dout, const float *gate,
                                      const float *y, int64_t ld, int64_t B, int64_t T, int64_t C) {
  if (B <= 0 || T <= 0 || C <= 0) return;
#pragma omp parallel if (B * T * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; b++) {
      const int64_t r = b * T * C;
      gated_backward_sample(dx ? dx + r : NULL, dgate ? dgate + b * ld : NULL, dy ? dy + r : NULL, dout + r,
                            gate + b * ld, y + r, T, C);
    }
  }
}
