/* GPT inference: nanoGPT-style sampling and scoring a byte file. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

/* Picks a token from one row of logits: argmax at temperature 0, else a
 * draw from softmax(logits / temperature) restricted to the top_k largest
 * (ties at the k-th value are kept, as torch.topk's threshold does). */
int32_t gpt_sample_row(const float *logits, int64_t V, float temperature, int64_t top_k, sparq_rng *rng,
                       double *work) {
  if (temperature <= 0.0f) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
      if (logits[i] > logits[best]) best = i;
    return (int32_t)best;
  }
  double threshold = -INFINITY;
  if (top_k > 0 && top_k < V) {
    /* The k-th largest value, by partial selection on a copy. */
    for (int64_t i = 0; i < V; i++) work[i] = logits[i];
    for (int64_t j = 0; j < top_k; j++) {
      int64_t best = j;
      for (int64_t i = j + 1; i < V; i++)
        if (work[i] > work[best]) best = i;
      double t = work[j];
      work[j] = work[best];
      work[best] = t;
    }
    threshold = work[top_k - 1];
  }
  double maxv = -INFINITY;
  for (int64_t i = 0; i < V; i++)
    if (logits[i] >= threshold && logits[i] > maxv) maxv = logits[i];
  double sum = 0.0;
  for (int64_t i = 0; i < V; i++) {
    work[i] = logits[i] >= threshold ? exp(((double)logits[i] - maxv) / temperature) : 0.0;
    sum += work[i];
  }
  double u = (double)sparq_rng_uniform(rng) * sum, acc = 0.0;
  int64_t last = 0;
  for (int64_t i = 0; i < V; i++) {
    if (work[i] <= 0.0) continue;
    last = i;
    acc += work[i];
    if (u < acc) return (int32_t)i;
  }
  return (int32_t)last;
}

sparq_status sparq_gpt_generate(sparq_gpt *g, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                float temperature, int64_t top_k, sparq_rng *rng, int32_t *out) {
  if (!g || !prompt || !rng || (n_new > 0 && !out))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_generate: NULL argument");
  if (n_prompt < 1 || n_new < 0)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_generate: needs a prompt of at least one token (got %" PRId64 ")",
                      n_prompt);
  if (!(temperature >= 0.0f) || !isfinite(temperature))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_generate: temperature %g must be finite and >= 0", temperature);
  if (g->cfg.num_classes > 0) {
    /* the logits carry a prefix row; a conditional model samples unconditionally through the null class */
    const sparq_gpt_sampling opt = {.temperature = temperature, .top_k = top_k,
                                    .label = (int32_t)g->cfg.num_classes, .gft_beta = 1.0f, .cfg_scale = 1.0f};
    return sparq_gpt_generate_cond(g, prompt, n_prompt, n_new, &opt, rng, out, NULL);
  }
  const int64_t V = g->cfg.vocab_size, ctx_max = g->cfg.block_size;
  int64_t total = n_prompt + n_new;
  int32_t *seq = sparq_alloc((size_t)total * sizeof *seq, "generated sequence");
  double *work = sparq_alloc((size_t)V * sizeof *work, "sampling buffer");
  if (!seq || !work) {
    sparq_free(seq);
    sparq_free(work);
    return SPARQ_ERR_NOMEM;
  }
  memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
  sparq_status s = SPARQ_OK;
  for (int64_t i = n_prompt; i < total && !s; i++) {
    int64_t T = i < ctx_max ? i : ctx_max;
    s = sparq_gpt_forward(g, seq + i - T, NULL, 1, T, NULL);
    if (!s) seq[i] = gpt_sample_row(g->logits + (T - 1) * V, V, temperature, top_k, rng, work);
  }
  if (!s && n_new > 0) memcpy(out, seq + n_prompt, (size_t)n_new * sizeof *out);
  sparq_free(seq);
  sparq_free(work);
  return s;
}

/* Windows per forward: enough rows for the GEMMs to run well. */
#define EVAL_BATCH 8

sparq_status sparq_gpt_eval_bytes(sparq_gpt *g, const uint8_t *data, size_t size, double *loss, int64_t *tokens) {
  return sparq_gpt_eval_bytes_cond(g, data, size, g ? (int32_t)g->cfg.num_classes : 0, loss, tokens);
}

sparq_status sparq_gpt_eval_bytes_cond(sparq_gpt *g, const uint8_t *data, size_t size, int32_t label, double *loss,
                                      int64_t *tokens) {
  if (!g || !data || !loss) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_eval_bytes: NULL argument");
  const int64_t T = g->cfg.block_size;
  if (size < (size_t)T + 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_eval_bytes: %zu bytes are fewer than block_size + 1 = %" PRId64, size,
                      T + 1);
  if (g->cfg.vocab_size < 256)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_eval_bytes: vocab_size %" PRId64 " cannot hold bytes",
                      g->cfg.vocab_size);
  int64_t windows = (int64_t)((size - 1) / (size_t)T); /* i + T + 1 <= size for i = w T */
  const bool cond = g->cfg.num_classes > 0;
  if (cond && (label < 0 || label > g->cfg.num_classes))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_eval_bytes: label %d is outside 0..%" PRId64, (int)label,
                      g->cfg.num_classes);
  int32_t labels[EVAL_BATCH];
  for (int b = 0; b < EVAL_BATCH; b++) labels[b] = label;
  int32_t *x = sparq_alloc((size_t)(EVAL_BATCH * T) * sizeof *x, "eval batch");
  int32_t *y = sparq_alloc((size_t)(EVAL_BATCH * T) * sizeof *y, "eval batch");
  if (!x || !y) {
    sparq_free(x);
    sparq_free(y);
    return SPARQ_ERR_NOMEM;
  }
  double sum = 0.0;
  sparq_status s = SPARQ_OK;
  for (int64_t w0 = 0; w0 < windows && !s; w0 += EVAL_BATCH) {
    int64_t nb = windows - w0 < EVAL_BATCH ? windows - w0 : EVAL_BATCH;
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *src = data + (size_t)((w0 + b) * T);
      for (int64_t t = 0; t < T; t++) {
        x[b * T + t] = src[t];
        y[b * T + t] = src[t + 1];
      }
    }
    float mean = 0.0f;
    s = sparq_gpt_forward_cond(g, x, y, cond ? labels : NULL, NULL, nb, T, &mean);
    sum += (double)mean * (double)(nb * T);
  }
  sparq_free(x);
  sparq_free(y);
  if (s) return s;
  *loss = sum / (double)(windows * T);
  if (tokens) *tokens = windows * T;
  return SPARQ_OK;
}
