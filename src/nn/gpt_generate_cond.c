/* Sampling from a conditional GPT: GFT's one forward per token at a
 * temperature gft_beta, or classifier-free guidance with two. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

static sparq_status check_sampling(const sparq_gpt *g, const sparq_gpt_sampling *o) {
  static const char who[] = "sparq_gpt_generate_cond";
  const sparq_gpt_config *c = &g->cfg;
  if (c->num_classes == 0) return sparq_fail(SPARQ_ERR_ARG, "%s: the model has no classes", who);
  if (!(o->temperature >= 0.0f) || !isfinite(o->temperature))
    return sparq_fail(SPARQ_ERR_ARG, "%s: temperature %g must be finite and >= 0", who, o->temperature);
  if (o->label < 0 || o->label > c->num_classes)
    return sparq_fail(SPARQ_ERR_ARG, "%s: class %d is outside 0..%" PRId64 " (%" PRId64 " = null)", who,
                      (int)o->label, c->num_classes - 1, c->num_classes);
  if (!(o->gft_beta > 0.0f && o->gft_beta <= 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: gft_beta %g is outside (0, 1]", who, o->gft_beta);
  if (o->gft_beta != 1.0f && c->gft_beta_dim == 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: gft_beta %g needs a GFT model (this one has no gft_beta input)", who,
                      o->gft_beta);
  if (!(o->cfg_scale >= 1.0f) || !isfinite(o->cfg_scale))
    return sparq_fail(SPARQ_ERR_ARG, "%s: CFG scale %g must be finite and >= 1", who, o->cfg_scale);
  if (o->cfg_scale > 1.0f && (o->gft_beta != 1.0f || o->label == c->num_classes))
    return sparq_fail(SPARQ_ERR_ARG, "%s: CFG needs a real class and gft_beta 1", who);
  return SPARQ_OK;
}

sparq_status sparq_gpt_generate_cond(sparq_gpt *g, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                                     const sparq_gpt_sampling *opt, sparq_rng *rng, int32_t *out, int64_t *nfe) {
  if (!g || !prompt || !opt || !rng || (n_new > 0 && !out))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_generate_cond: NULL argument");
  if (n_prompt < 1 || n_new < 0)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_generate_cond: needs a prompt of at least one token (got %" PRId64 ")",
                      n_prompt);
  sparq_status s = check_sampling(g, opt);
  if (s) return s;
  const int64_t V = g->cfg.vocab_size, ctx_max = g->cfg.block_size;
  const bool cfg = opt->cfg_scale > 1.0f;
  const int64_t nb = cfg ? 2 : 1; /* CFG: the conditional and the null sequence in one call */
  const int32_t labels[2] = {opt->label, (int32_t)g->cfg.num_classes};
  const float betas[2] = {opt->gft_beta, 1.0f};
  const int64_t total = n_prompt + n_new;
  int32_t *seq = sparq_alloc((size_t)total * sizeof *seq, "generated sequence");
  int32_t *x = sparq_alloc((size_t)(nb * ctx_max) * sizeof *x, "generation context");
  float *logits = sparq_alloc((size_t)(nb * (ctx_max + 1) * V) * sizeof *logits, "generation logits");
  float *mix = sparq_alloc((size_t)V * sizeof *mix, "guided logits");
  double *work = sparq_alloc((size_t)V * sizeof *work, "sampling buffer");
  if (!seq || !x || !logits || !mix || !work) s = SPARQ_ERR_NOMEM;
  if (!s) memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
  for (int64_t i = n_prompt; i < total && !s; i++) {
    const int64_t T = i < ctx_max ? i : ctx_max;
    for (int64_t b = 0; b < nb; b++) memcpy(x + b * T, seq + i - T, (size_t)T * sizeof *x);
    s = sparq_gpt_infer(g, x, labels, g->cfg.gft_beta_dim > 0 ? betas : NULL, nb, T, logits);
    if (s) break;
    const float *lc = logits + T * V; /* the last row of sequence 0 (row 0 is the prefix) */
    if (cfg) {
      const float *lu = logits + ((T + 1) + T) * V, w = opt->cfg_scale;
      for (int64_t v = 0; v < V; v++) mix[v] = lu[v] + w * (lc[v] - lu[v]);
      lc = mix;
    }
    seq[i] = gpt_sample_row(lc, V, opt->temperature, opt->top_k, rng, work);
  }
  if (!s && n_new > 0) memcpy(out, seq + n_prompt, (size_t)n_new * sizeof *out);
  if (!s && nfe) *nfe = nb;
  sparq_free(seq);
  sparq_free(x);
  sparq_free(logits);
  sparq_free(mix);
  sparq_free(work);
  return s;
}
