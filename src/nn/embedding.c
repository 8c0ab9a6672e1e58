/* GPT input embedding: token row plus position row.
 *   out[b,t,:] = wte[tokens[b,t], :] + wpe[t, :]
 * The backward scatters into the rows of wte that the tokens pick, so two
 * rows n may hit the same wte row: each thread owns a range of columns and
 * walks all rows in order, which is race-free and gives the same sums for
 * any thread count. */
#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

static void add_rows(float *restrict out, const float *restrict a, const float *restrict b, int64_t C) {
  for (int64_t c = 0; c < C; c++) out[c] = a[c] + b[c];
}

void sparq_nn_embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int64_t B,
                                int64_t T, int64_t C) {
  if (B <= 0 || T <= 0 || C <= 0) return;
  const int64_t N = B * T;
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) add_rows(out + n * C, wte + (int64_t)tokens[n] * C, wpe + (n % T) * C, C);
  }
}

static void acc_cols(float *restrict dst, const float *restrict src, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
}

void sparq_nn_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int64_t B,
                                 int64_t T, int64_t C) {
  if (B <= 0 || T <= 0 || C <= 0 || (!dwte && !dwpe)) return;
  const int64_t N = B * T;
#pragma omp parallel if (N * C >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
    int64_t c0, c1;
    nn_thread_columns(C, &c0, &c1);
    if (c0 < c1)
      for (int64_t n = 0; n < N; n++) {
        const float *g = dout + n * C;
        if (dwte) acc_cols(dwte + (int64_t)tokens[n] * C, g, c0, c1);
        if (dwpe) acc_cols(dwpe + (n % T) * C, g, c0, c1);
      }
  }
}
