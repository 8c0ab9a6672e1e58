/* The pieces of the double-precision GPT reference (written from nanoGPT's
 * model.py) that the GPT tests share: the parameter view, LayerNorm and
 * linear layers, and the random non-trivial parameters the gradient checks
 * run on. */
#ifndef SPARQ_TEST_GPT_REF_UTIL_H
#define SPARQ_TEST_GPT_REF_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_linear_util.h"
#include "sparq/sparq.h"

typedef struct ref_model {
  const sparq_gpt_config *c;
  const sparq_param_list *pl;
  const double *w; /* all parameters in double, same offsets as pl->data */
} ref_model;

static const double *P(const ref_model *m, const char *name) {
  const sparq_param *p = sparq_params_find(m->pl, name);
  return p ? m->w + p->offset : NULL;
}

static const double *LP(const ref_model *m, int l, const char *suffix) {
  char name[128];
  snprintf(name, sizeof name, "transformer.h.%d.%s", l, suffix);
  return P(m, name);
}

static void ref_layernorm(double *out, const double *in, const double *w, const double *b, int N, int C) {
  for (int n = 0; n < N; n++) {
    double mean = 0, var = 0;
    for (int i = 0; i < C; i++) mean += in[n * C + i];
    mean /= C;
    for (int i = 0; i < C; i++) var += (in[n * C + i] - mean) * (in[n * C + i] - mean);
    var /= C;
    double rstd = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < C; i++) out[n * C + i] = (in[n * C + i] - mean) * rstd * w[i] + (b ? b[i] : 0.0);
  }
}

/* nanoGPT's blocks, final LayerNorm and tied head on the embedded residual
 * stream res [B, T, C] (changed in place): logits [B * T, V]. */
static void ref_gpt_trunk(const ref_model *m, double *res, int B, int T, double *logits) {
  const int C = (int)m->c->n_embd, NH = (int)m->c->n_head, hd = C / NH, V = (int)m->c->vocab_size, N = B * T;
  double *h = calloc((size_t)N * C, sizeof(double)), *qkv = calloc((size_t)N * 3 * C, sizeof(double));
  double *att = calloc((size_t)N * C, sizeof(double)), *tmp = calloc((size_t)N * 4 * C, sizeof(double));
  double *tmp2 = calloc((size_t)N * C, sizeof(double));
  const double *wte = P(m, "transformer.wte.weight");
  for (int l = 0; l < (int)m->c->n_layer; l++) {
    ref_layernorm(h, res, LP(m, l, "ln_1.weight"), LP(m, l, "ln_1.bias"), N, C);
    ref_linear(qkv, h, LP(m, l, "attn.c_attn.weight"), LP(m, l, "attn.c_attn.bias"), N, C, 3 * C);
    for (int b = 0; b < B; b++)
      for (int hh = 0; hh < NH; hh++)
        for (int i = 0; i < T; i++) {
          const double *q = qkv + (size_t)(b * T + i) * 3 * C + hh * hd;
          double s[64], mx = -INFINITY, sum = 0;
          for (int j = 0; j <= i; j++) {
            const double *k = qkv + (size_t)(b * T + j) * 3 * C + C + hh * hd;
            double d = 0;
            for (int e = 0; e < hd; e++) d += q[e] * k[e];
            s[j] = d / sqrt((double)hd);
            if (s[j] > mx) mx = s[j];
          }
          for (int j = 0; j <= i; j++) sum += s[j] = exp(s[j] - mx);
          for (int e = 0; e < hd; e++) {
            double o = 0;
            for (int j = 0; j <= i; j++) o += s[j] / sum * qkv[(size_t)(b * T + j) * 3 * C + 2 * C + hh * hd + e];
            att[(b * T + i) * C + hh * hd + e] = o;
          }
        }
    ref_linear(tmp2, att, LP(m, l, "attn.c_proj.weight"), LP(m, l, "attn.c_proj.bias"), N, C, C);
    for (int i = 0; i < N * C; i++) res[i] += tmp2[i];
    ref_layernorm(h, res, LP(m, l, "ln_2.weight"), LP(m, l, "ln_2.bias"), N, C);
    ref_linear(tmp, h, LP(m, l, "mlp.c_fc.weight"), LP(m, l, "mlp.c_fc.bias"), N, C, 4 * C);
    for (int i = 0; i < N * 4 * C; i++) tmp[i] = 0.5 * tmp[i] * (1.0 + erf(tmp[i] / sqrt(2.0)));
    ref_linear(tmp2, tmp, LP(m, l, "mlp.c_proj.weight"), LP(m, l, "mlp.c_proj.bias"), N, 4 * C, C);
    for (int i = 0; i < N * C; i++) res[i] += tmp2[i];
  }
  ref_layernorm(h, res, P(m, "transformer.ln_f.weight"), P(m, "transformer.ln_f.bias"), N, C);
  ref_linear(logits, h, wte, NULL, N, C, V);
  free(h), free(qkv), free(att), free(tmp), free(tmp2);
}

/* Random non-trivial parameters (the default init has zero biases and unit
 * gains, which would hide gradient mistakes in those terms). */
static void randomize(sparq_param_list *pl, uint64_t seed) {
  sparq_rng rng = sparq_rng_make(seed, 9);
  for (size_t i = 0; i < pl->count; i++) {
    sparq_param *p = &pl->items[i];
    float std = p->ndim == 2 ? 0.3f : 0.2f;
    float mean = (p->ndim == 1 && strstr(p->name, ".weight")) ? 1.0f : 0.0f;
    sparq_rng_fill_normal(&rng, p->data, p->numel, mean, std);
  }
}

#endif
