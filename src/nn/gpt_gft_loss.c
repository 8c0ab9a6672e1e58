/* GFT's autoregressive loss: cross-entropy of softmax(beta l_s + (1 - beta)
 * sg[l_u]) (spec gft.md section 3 "Autoregressive").
 *
 * The combination is formed once into scratch and handed to the fused
 * cross-entropy of nn.h, so the softmax, its AVX-512 path and its
 * thread-count independence are the plain LM's; the two elementwise passes
 * here (combine, scale by beta) own whole rows, so they are
 * thread-independent too. ISO C mode keeps FP contraction off, so
 * beta l_s + (1 - beta) l_u rounds the same on every ISA, and at beta = 1
 * it is l_s exactly (1 l_s + 0 l_u). */
#include <inttypes.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/gpt.h"
#include "sparq/nn.h"

/* Below this many floats a pass stays on the calling thread. */
#define GFT_PAR_MIN 32768

static void combine(float *comb, const float *l_s, const float *l_u, const float *beta, int64_t n_seq, int64_t rows,
                    int64_t V) {
  const int64_t N = n_seq * rows;
#pragma omp parallel if (N * V >= GFT_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float b = beta[n / rows], a = 1.0f - b;
      const float *s = l_s + n * V, *u = l_u + n * V;
      float *o = comb + n * V;
      for (int64_t v = 0; v < V; v++) o[v] = b * s[v] + a * u[v];
    }
  }
}

/* d l_cond / d l_s = beta: the rows of sequence b scaled by beta_b. */
static void scale_rows(float *d, const float *beta, int64_t n_seq, int64_t rows, int64_t V) {
  const int64_t N = n_seq * rows;
#pragma omp parallel if (N * V >= GFT_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
      const float b = beta[n / rows];
      float *r = d + n * V;
      for (int64_t v = 0; v < V; v++) r[v] *= b;
    }
  }
}

sparq_status sparq_gpt_gft_loss(int64_t n_seq, int64_t rows, int64_t V, const float *gft_beta, const float *l_s,
                                const float *l_u, const int32_t *targets, float dloss, float *dl_s, float *work,
                                float *loss, float *loss_s, float *loss_u) {
  static const char who[] = "sparq_gpt_gft_loss";
  if (!l_s || !targets || !work || !loss) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (n_seq < 1 || rows < 1 || V < 1 || n_seq > INT64_MAX / rows || n_seq * rows > INT64_MAX / V)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %" PRId64 " sequences of %" PRId64 " rows of %" PRId64 " logits", who,
                      n_seq, rows, V);
  if ((gft_beta || loss_u) && !l_u) return sparq_fail(SPARQ_ERR_ARG, "%s: the combination needs l_u", who);
  const int64_t N = n_seq * rows;
  float *comb = work, *probs = work + N * V;
  sparq_status s = SPARQ_OK;
  if (loss_u) s = sparq_nn_xent_forward(loss_u, NULL, l_u, targets, N, V);
  if (!s && loss_s) s = sparq_nn_xent_forward(loss_s, NULL, l_s, targets, N, V);
  if (s) return s;
  const float *l_cond = l_s;
  if (gft_beta) {
    combine(comb, l_s, l_u, gft_beta, n_seq, rows, V);
    l_cond = comb;
  }
  if ((s = sparq_nn_xent_forward(loss, probs, l_cond, targets, N, V))) return s;
  if (dl_s) {
    memset(dl_s, 0, (size_t)(N * V) * sizeof *dl_s);
    sparq_nn_xent_backward(dl_s, probs, targets, N, V, dloss);
    if (gft_beta) scale_rows(dl_s, gft_beta, n_seq, rows, V);
  }
  return SPARQ_OK;
}
