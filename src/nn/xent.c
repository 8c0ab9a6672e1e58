/* Softmax cross-entropy with ignored targets.
 *   forward   probs[n,:] = softmax(logits[n,:]),
 *             loss = mean over rows with target >= 0 of
 *                    logsumexp(logits[n,:]) - logits[n, target[n]]
 *   backward  dlogits[n,:] += dloss (probs[n,:] - onehot(target[n])) / valid
 * logsumexp is the stable max + log(sum exp(x - max)); the row losses are
 * computed in parallel (whole rows per thread) into a block buffer and
 * summed in double on one thread in row order, so the loss has the same
 * bits for any thread count. */
#include <math.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

/* Rows per parallel region; the block's row losses live on the stack
 * (16 KiB). A GPT step's 2048 rows take one region. */
#define XENT_BLOCK 2048

/* The portable row: *max = max_c x[c] (a NaN logit is skipped here; it
 * makes the sum NaN), returns s = sum_c exp(x[c] - max) in the lane order
 * of nn_internal.h and writes the softmax into probs (may be NULL). */
static float softmax_row_portable(float *restrict probs, const float *restrict x, int64_t V, float *max) {
  float m = -INFINITY;
  for (int64_t c = 0; c < V; c++) m = x[c] > m ? x[c] : m;
  *max = m;
  float acc[NN_LANES] = {0};
  for (int64_t c = 0; c < V; c++) {
    const float e = expf(x[c] - m);
    if (probs) probs[c] = e;
    acc[c % NN_LANES] += e;
  }
  const float s = nn_lanes_combine(acc);
  if (probs)
    for (int64_t c = 0; c < V; c++) probs[c] = probs[c] / s;
  return s;
}

typedef float (*softmax_row_fn)(float *, const float *, int64_t, float *);

static softmax_row_fn pick_softmax_row(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() >= SPARQ_ISA_AVX512) return nn_softmax_row_avx512;
#endif
  return softmax_row_portable;
}

/* Row loss (0 for an ignored row); writes the softmax when probs != NULL. */
static double row_loss(float *probs, const float *x, int32_t target, int64_t V, softmax_row_fn row) {
  float m;
  const float s = row(probs, x, V, &m);
  if (target < 0) return 0.0;
  return (double)m + log((double)s) - (double)x[target];
}

sparq_status sparq_nn_xent_forward(float *loss, float *probs, const float *logits, const int32_t *targets, int64_t N,
                                   int64_t V) {
  static const char who[] = "sparq_nn_xent_forward";
  if (!loss) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL loss", who);
  if (N < 0 || V < 1)
    return sparq_fail(SPARQ_ERR_ARG, "%s: N=%lld V=%lld (need N >= 0, V >= 1)", who, (long long)N, (long long)V);
  if (N > 0 && (!logits || !targets)) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL logits or targets", who);
  int64_t valid = 0;
  for (int64_t n = 0; n < N; n++) {
    if (targets[n] >= V)
      return sparq_fail(SPARQ_ERR_ARG, "%s: target %ld of row %lld is not below V = %lld", who, (long)targets[n],
                        (long long)n, (long long)V);
    valid += targets[n] >= 0;
  }
  const softmax_row_fn row = pick_softmax_row();
  double total = 0.0;
  for (int64_t n0 = 0; n0 < N; n0 += XENT_BLOCK) {
    const int64_t rows = N - n0 < XENT_BLOCK ? N - n0 : XENT_BLOCK;
    double rl[XENT_BLOCK];
#pragma omp parallel if (rows * V >= NN_PAR_MIN)
    {
      sparq_thread_set_ftz();
#pragma omp for schedule(static)
      for (int64_t i = 0; i < rows; i++) {
        const int64_t n = n0 + i;
        rl[i] = row_loss(probs ? probs + n * V : NULL, logits + n * V, targets[n], V, row);
      }
    }
    for (int64_t i = 0; i < rows; i++) total += rl[i];
  }
  *loss = valid ? (float)(total / (double)valid) : 0.0f;
  return SPARQ_OK;
}

static void xent_grad_row(float *restrict dl, const float *restrict p, int32_t t, int64_t V, float s) {
  const float old = dl[t];
  for (int64_t c = 0; c < V; c++) dl[c] += s * p[c];
  dl[t] = old + s * (p[t] - 1.0f);
}

void sparq_nn_xent_backward(float *dlogits, const float *probs, const int32_t *targets, int64_t N, int64_t V,
                            float dloss) {
  if (N <= 0 || V <= 0 || !dlogits) return;
  int64_t valid = 0;
  for (int64_t n = 0; n < N; n++) valid += targets[n] >= 0 && targets[n] < V;
  if (valid == 0) return;
  const float s = dloss / (float)valid;
#pragma omp parallel if (N * V >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++)
      if (targets[n] >= 0 && targets[n] < V) xent_grad_row(dlogits + n * V, probs + n * V, targets[n], V, s);
  }
}
