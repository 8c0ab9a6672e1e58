/* The DiT model as a whole: facebookresearch/DiT's parameter names, shapes
 * and initialize_weights, adaLN-Zero (a fresh model's blocks are exactly the
 * identity and its output exactly 0), the FP32 forward against a
 * double-precision reference written here from DiT's models.py (and GFT's
 * cond_proj), every parameter tensor's gradient against central finite
 * differences of that reference, inference against training bit for bit,
 * 1 vs 2 threads bit for bit, sparq_dit_zero_extra, the checkpoint
 * metadata, and bad configs and arguments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/dit_internal.h"
#include "ref_linear_util.h"
#include "sparq/base.h"
#include "sparq/dit.h"
#include "sparq/io.h"

/* ------------------------------------------- double-precision reference */

typedef struct ref_model {
  const sparq_dit_config *c;
  const sparq_param_list *pl;
  const double *w; /* every parameter in double, at the same offsets as pl->data */
} ref_model;

static const double *P(const ref_model *m, const char *name) {
  const sparq_param *p = sparq_params_find(m->pl, name);
  assert_non_null(p);
  return m->w + p->offset;
}

static const double *BP(const ref_model *m, int l, const char *suffix) {
  char name[128];
  snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);
  return P(m, name);
}

/* LayerNorm(C, elementwise_affine=False, eps=1e-6), then modulate with the
 * per-sample rows shift, scale of a [B, ld] matrix. */
static void ref_norm_modulate(double *out, const double *in, const double *shift, const double *scale, int ld, int B,
                              int T, int C) {
  for (int n = 0; n < B * T; n++) {
    const double *x = in + n * C;
    double mean = 0, var = 0;
    for (int i = 0; i < C; i++) mean += x[i];
    mean /= C;
    for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= C;
    const int b = n / T;
    for (int i = 0; i < C; i++)
      out[n * C + i] = (x[i] - mean) / sqrt(var + 1e-6) * (1.0 + scale[b * ld + i]) + shift[b * ld + i];
  }
}

static double silu(double x) { return x / (1.0 + exp(-x)); }

/* TimestepEmbedder.timestep_embedding of one value; PyTorch forms the
 * frequencies in float32. */
static void ref_freq(double *out, float t, int dim) {
  const int half = dim / 2;
  for (int i = 0; i < half; i++) {
    const float f = (float)exp(-log(10000.0) * i / half);
    out[i] = cos((double)t * f);
    out[half + i] = sin((double)t * f);
  }
}

/* DiT.forward (and GFT's beta path) in double: out [B, C, H, W]. */
static void ref_forward(const ref_model *m, const float *x, const float *tin, const int32_t *y, const float *extra,
                        int B, double *out) {
  const sparq_dit_config *c = m->c;
  const int D = (int)c->hidden_size, p = (int)c->patch_size, C = (int)c->in_channels, S = (int)c->input_size;
  const int G = S / p, T = G * G, N = B * T, K = C * p * p, M = (int)(D * c->mlp_ratio), NH = (int)c->num_heads;
  const int hd = D / NH, E = (int)c->extra_dim, F = 256;
  double *xs = calloc((size_t)N * D, sizeof(double)), *h = calloc((size_t)N * D, sizeof(double));
  double *qkv = calloc((size_t)N * 3 * D, sizeof(double)), *att = calloc((size_t)N * D, sizeof(double));
  double *f1 = calloc((size_t)N * M, sizeof(double)), *br = calloc((size_t)N * D, sizeof(double));
  double *lin = calloc((size_t)N * K, sizeof(double)), *mod = calloc((size_t)B * 6 * D, sizeof(double));
  double *tf = calloc((size_t)B * F, sizeof(double)), *ef = calloc((size_t)B * (E ? E : 1), sizeof(double));
  double *tmp = calloc((size_t)B * F, sizeof(double)), *cc = calloc((size_t)B * D, sizeof(double));
  double *sc = calloc((size_t)B * D, sizeof(double)), *h1 = calloc((size_t)B * D, sizeof(double));
  /* x_embedder: Conv2d(C, D, kernel = stride = p), then + pos_embed */
  const double *pw = P(m, "x_embedder.proj.weight"), *pb = P(m, "x_embedder.proj.bias"), *pos = P(m, "pos_embed");
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int o = 0; o < D; o++) {
        double s = pb[o];
        for (int ch = 0; ch < C; ch++)
          for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
              s += pw[((o * C + ch) * p + i) * p + j] * x[((b * C + ch) * S + (t / G) * p + i) * S + (t % G) * p + j];
        xs[(b * T + t) * D + o] = s + pos[t * D + o];
      }
  /* c = t_embedder(t, beta) + y_embedder(y) */
  for (int b = 0; b < B; b++) ref_freq(tf + b * F, tin[b], F);
  if (E) {
    for (int b = 0; b < B; b++) ref_freq(ef + b * E, c->extra_scale * extra[b], E);
    ref_linear(tmp, ef, P(m, "t_embedder.cond_proj.weight"), NULL, B, E, F);
    for (int i = 0; i < B * F; i++) tf[i] += tmp[i];
  }
  ref_linear(h1, tf, P(m, "t_embedder.mlp.0.weight"), P(m, "t_embedder.mlp.0.bias"), B, F, D);
  for (int i = 0; i < B * D; i++) h1[i] = silu(h1[i]);
  ref_linear(cc, h1, P(m, "t_embedder.mlp.2.weight"), P(m, "t_embedder.mlp.2.bias"), B, D, D);
  const double *table = P(m, "y_embedder.embedding_table.weight");
  for (int b = 0; b < B; b++)
    for (int i = 0; i < D; i++) cc[b * D + i] += table[y[b] * D + i];
  for (int i = 0; i < B * D; i++) sc[i] = silu(cc[i]);
  for (int l = 0; l < (int)c->depth; l++) {
    ref_linear(mod, sc, BP(m, l, "adaLN_modulation.1.weight"), BP(m, l, "adaLN_modulation.1.bias"), B, D, 6 * D);
    /* x = x + gate_msa * attn(modulate(norm1(x), shift_msa, scale_msa)) */
    ref_norm_modulate(h, xs, mod, mod + D, 6 * D, B, T, D);
    ref_linear(qkv, h, BP(m, l, "attn.qkv.weight"), BP(m, l, "attn.qkv.bias"), N, D, 3 * D);
    for (int b = 0; b < B; b++) /* reshape (B, T, 3, heads, hd); softmax over every key */
      for (int hh = 0; hh < NH; hh++)
        for (int i = 0; i < T; i++) {
          double s[256], mx = -INFINITY, sum = 0;
          for (int j = 0; j < T; j++) {
            double d = 0;
            for (int e = 0; e < hd; e++)
              d += qkv[(b * T + i) * 3 * D + hh * hd + e] * qkv[(b * T + j) * 3 * D + D + hh * hd + e];
            s[j] = d / sqrt((double)hd);
            mx = fmax(mx, s[j]);
          }
          for (int j = 0; j < T; j++) sum += s[j] = exp(s[j] - mx);
          for (int e = 0; e < hd; e++) {
            double o = 0;
            for (int j = 0; j < T; j++) o += s[j] / sum * qkv[(b * T + j) * 3 * D + 2 * D + hh * hd + e];
            att[(b * T + i) * D + hh * hd + e] = o;
          }
        }
    ref_linear(br, att, BP(m, l, "attn.proj.weight"), BP(m, l, "attn.proj.bias"), N, D, D);
    for (int n = 0; n < N; n++)
      for (int i = 0; i < D; i++) xs[n * D + i] += mod[(n / T) * 6 * D + 2 * D + i] * br[n * D + i];
    /* x = x + gate_mlp * mlp(modulate(norm2(x), shift_mlp, scale_mlp)) */
    ref_norm_modulate(h, xs, mod + 3 * D, mod + 4 * D, 6 * D, B, T, D);
    ref_linear(f1, h, BP(m, l, "mlp.fc1.weight"), BP(m, l, "mlp.fc1.bias"), N, D, M);
    for (int i = 0; i < N * M; i++) {
      const double v = f1[i];
      f1[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    ref_linear(br, f1, BP(m, l, "mlp.fc2.weight"), BP(m, l, "mlp.fc2.bias"), N, M, D);
    for (int n = 0; n < N; n++)
      for (int i = 0; i < D; i++) xs[n * D + i] += mod[(n / T) * 6 * D + 5 * D + i] * br[n * D + i];
  }
  /* final_layer, then unpatchify: (h, w, p, q, c) -> 'nhwpqc->nchpwq' */
  ref_linear(mod, sc, P(m, "final_layer.adaLN_modulation.1.weight"), P(m, "final_layer.adaLN_modulation.1.bias"), B,
             D, 2 * D);
  ref_norm_modulate(h, xs, mod, mod + D, 2 * D, B, T, D);
  ref_linear(lin, h, P(m, "final_layer.linear.weight"), P(m, "final_layer.linear.bias"), N, D, K);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++)
          for (int ch = 0; ch < C; ch++)
            out[((b * C + ch) * S + (t / G) * p + i) * S + (t % G) * p + j] =
                lin[(b * T + t) * K + (i * p + j) * C + ch];
  free(xs), free(h), free(qkv), free(att), free(f1), free(br), free(lin), free(mod), free(tf), free(ef), free(tmp);
  free(cc), free(sc), free(h1);
}

/* ------------------------------------------------------------- helpers */

static sparq_dit_config tiny_config(int64_t extra_dim) {
  sparq_dit_config c = sparq_dit_config_default();
  c.input_size = 8, c.patch_size = 2, c.in_channels = 3, c.hidden_size = 32, c.depth = 2, c.num_heads = 2;
  c.num_classes = 5, c.extra_dim = extra_dim;
  return c;
}

static sparq_dit *make(const sparq_dit_config *c, uint64_t seed) {
  sparq_dit *m = NULL;
  assert_int_equal(sparq_dit_create(c, seed, &m), SPARQ_OK);
  assert_non_null(m);
  return m;
}

/* Random non-trivial trainable parameters of about unit activations (the
 * DiT init zeroes the adaLN and output layers, which would hide most
 * gradient mistakes); pos_embed keeps its table. */
static void randomize(sparq_param_list *pl, uint64_t seed) {
  for (size_t i = 0; i < pl->count; i++) {
    sparq_param *p = &pl->items[i];
    if (p->frozen) continue;
    sparq_rng rng = sparq_rng_make(seed, i);
    const double fan_in = p->ndim == 1 ? 1.0 : (double)p->numel / (double)p->shape[0];
    float sd = p->ndim == 1 ? 0.2f : (float)(1.0 / sqrt(fan_in));
    if (strstr(p->name, "embedding_table")) sd = 0.5f;
    sparq_rng_fill_normal(&rng, p->data, p->numel, 0.0f, sd);
  }
}

static float *frand(size_t n, uint64_t seed, float sd) {
  float *x = malloc(n * sizeof(float));
  sparq_rng rng = sparq_rng_make(seed, 1);
  sparq_rng_fill_normal(&rng, x, n, 0.0f, sd);
  return x;
}

static size_t image_numel(const sparq_dit_config *c, int64_t B) {
  return (size_t)(B * c->in_channels * c->input_size * c->input_size);
}

/* ----------------------------------------------------- names and shapes */

typedef struct expected {
  const char *name;
  int ndim;
  int64_t shape[4];
} expected;

static void test_names_shapes_and_init(void **state) {
  (void)state;
  const sparq_dit_config c = tiny_config(16); /* D 32, C 3, p 2, T 16, M 128, 5 classes */
  sparq_dit *m = make(&c, 7);
  const expected want[] = {
      {"pos_embed", 3, {1, 16, 32}},
      {"x_embedder.proj.weight", 4, {32, 3, 2, 2}},
      {"x_embedder.proj.bias", 1, {32}},
      {"t_embedder.mlp.0.weight", 2, {32, 256}},
      {"t_embedder.mlp.0.bias", 1, {32}},
      {"t_embedder.mlp.2.weight", 2, {32, 32}},
      {"t_embedder.mlp.2.bias", 1, {32}},
      {"t_embedder.cond_proj.weight", 2, {256, 16}},
      {"y_embedder.embedding_table.weight", 2, {6, 32}},
      {"blocks.0.attn.qkv.weight", 2, {96, 32}},
      {"blocks.0.attn.qkv.bias", 1, {96}},
      {"blocks.0.attn.proj.weight", 2, {32, 32}},
      {"blocks.0.attn.proj.bias", 1, {32}},
      {"blocks.0.mlp.fc1.weight", 2, {128, 32}},
      {"blocks.0.mlp.fc1.bias", 1, {128}},
      {"blocks.0.mlp.fc2.weight", 2, {32, 128}},
      {"blocks.0.mlp.fc2.bias", 1, {32}},
      {"blocks.0.adaLN_modulation.1.weight", 2, {192, 32}},
      {"blocks.0.adaLN_modulation.1.bias", 1, {192}},
      {"blocks.1.attn.qkv.weight", 2, {96, 32}},
      {"blocks.1.attn.qkv.bias", 1, {96}},
      {"blocks.1.attn.proj.weight", 2, {32, 32}},
      {"blocks.1.attn.proj.bias", 1, {32}},
      {"blocks.1.mlp.fc1.weight", 2, {128, 32}},
      {"blocks.1.mlp.fc1.bias", 1, {128}},
      {"blocks.1.mlp.fc2.weight", 2, {32, 128}},
      {"blocks.1.mlp.fc2.bias", 1, {32}},
      {"blocks.1.adaLN_modulation.1.weight", 2, {192, 32}},
      {"blocks.1.adaLN_modulation.1.bias", 1, {192}},
      {"final_layer.linear.weight", 2, {12, 32}},
      {"final_layer.linear.bias", 1, {12}},
      {"final_layer.adaLN_modulation.1.weight", 2, {64, 32}},
      {"final_layer.adaLN_modulation.1.bias", 1, {64}},
  };
  const size_t n_want = sizeof want / sizeof want[0];
  sparq_param_list *pl = sparq_dit_params(m);
  assert_int_equal(pl->count, n_want);
  for (size_t i = 0; i < n_want; i++) {
    const sparq_param *p = &pl->items[i];
    if (strcmp(p->name, want[i].name) != 0) fail_msg("parameter %zu is %s, DiT has %s", i, p->name, want[i].name);
    assert_int_equal(p->ndim, want[i].ndim);
    for (int d = 0; d < p->ndim; d++) assert_int_equal(p->shape[d], want[i].shape[d]);
    assert_int_equal(p->frozen, i == 0); /* only pos_embed */
  }

  /* initialize_weights */
  for (size_t i = 0; i < n_want; i++) {
    const sparq_param *p = &pl->items[i];
    double sum2 = 0, maxabs = 0;
    for (size_t j = 0; j < p->numel; j++)
      sum2 += (double)p->data[j] * p->data[j], maxabs = fmax(maxabs, fabs(p->data[j]));
    const double sd = sqrt(sum2 / (double)p->numel);
    const bool zero = p->ndim == 1 || strstr(p->name, "adaLN_modulation") || strstr(p->name, "final_layer.linear");
    if (i == 0) continue; /* pos_embed: below */
    if (zero) {
      if (maxabs != 0.0) fail_msg("%s is not zero at init", p->name);
    } else if (strstr(p->name, "t_embedder") || strstr(p->name, "embedding_table")) {
      if (fabs(sd - 0.02) > 0.1 * 0.02) fail_msg("%s: std %.4g, expected N(0, 0.02)", p->name, sd);
    } else { /* xavier_uniform on [fan_out, fan_in] (the conv weight as [D, C*p*p]) */
      const double fan_out = (double)p->shape[0], fan_in = (double)p->numel / fan_out;
      const double a = sqrt(6.0 / (fan_in + fan_out));
      if (maxabs > a || maxabs < 0.9 * a) fail_msg("%s: max |w| %.4g, xavier bound %.4g", p->name, maxabs, a);
      if (fabs(sd - a / sqrt(3.0)) > 0.1 * a / sqrt(3.0))
        fail_msg("%s: std %.4g, expected %.4g", p->name, sd, a / sqrt(3.0));
    }
  }
  /* get_2d_sincos_pos_embed: row t = i * 4 + j; [sin j w, cos j w, sin i w, cos i w], w_k = 10000^(-k/8) */
  const float *pos = pl->items[0].data;
  for (int t = 0; t < 16; t++)
    for (int k = 0; k < 8; k++) {
      const double w = pow(10000.0, -k / 8.0), i = t / 4, j = t % 4;
      const double v[4] = {sin(j * w), cos(j * w), sin(i * w), cos(i * w)};
      for (int q = 0; q < 4; q++)
        if (fabs(pos[t * 32 + q * 8 + k] - v[q]) > 1e-7)
          fail_msg("pos_embed[%d, %d] = %.9g, expected %.9g", t, q * 8 + k, (double)pos[t * 32 + q * 8 + k], v[q]);
    }
  /* the same seed gives the same model; another seed another one */
  sparq_dit *m2 = make(&c, 7), *m3 = make(&c, 8);
  assert_memory_equal(pl->data, sparq_dit_params(m2)->data, pl->numel * sizeof(float));
  assert_true(memcmp(pl->data, sparq_dit_params(m3)->data, pl->numel * sizeof(float)) != 0);
  /* without the extra input there is no cond_proj */
  const sparq_dit_config c0 = tiny_config(0);
  sparq_dit *m0 = make(&c0, 7);
  assert_null(sparq_params_find(sparq_dit_params(m0), "t_embedder.cond_proj.weight"));
  assert_int_equal(sparq_dit_params(m0)->count, n_want - 1);
  sparq_dit_free(m), sparq_dit_free(m2), sparq_dit_free(m3), sparq_dit_free(m0);
}

/* ------------------------------------------------------------ adaLN-Zero */

/* DiT's LabelEmbedder adds the null row only for label dropout: without it
 * the table has num_classes rows and the null label is rejected. */
static void test_null_row_follows_dropout(void **state) {
  (void)state;
  sparq_dit_config c = tiny_config(0);
  c.class_dropout_prob = 0.0f;
  sparq_dit *m = make(&c, 3);
  const sparq_param *table = sparq_params_find(sparq_dit_params(m), "y_embedder.embedding_table.weight");
  assert_non_null(table);
  assert_int_equal(table->shape[0], 5);
  const int64_t B = 2, dim = c.in_channels * c.input_size * c.input_size;
  float x[2 * 3 * 8 * 8] = {0}, out[2 * 3 * 8 * 8], t[2] = {10.0f, 500.0f};
  assert_int_equal((int64_t)(sizeof x / sizeof x[0]), B * dim);
  int32_t y[2] = {4, 0};
  assert_int_equal(sparq_dit_forward(m, x, t, y, NULL, B, out), SPARQ_OK);
  y[1] = 5;
  assert_int_equal(sparq_dit_forward(m, x, t, y, NULL, B, out), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "no null class"));
  assert_int_equal(sparq_dit_infer(m, x, t, y, NULL, B, SPARQ_ATTN_FLASH_F32, out), SPARQ_ERR_ARG);
  sparq_dit_free(m);
}

static void test_adaln_zero_identity(void **state) {
  (void)state;
  const sparq_dit_config c = tiny_config(16);
  sparq_dit *m = make(&c, 3);
  const int64_t B = 3;
  const size_t n = image_numel(&c, B);
  float *x = frand(n, 1, 1.0f), *out = malloc(n * sizeof(float));
  const float t[3] = {5, 500, 999}, extra[3] = {0.2f, 1.0f, 0.5f};
  const int32_t y[3] = {0, 5, 4};
  for (size_t i = 0; i < n; i++) out[i] = 1.0f;
  assert_int_equal(sparq_dit_forward(m, x, t, y, extra, B, out), SPARQ_OK);
  for (size_t i = 0; i < n; i++)
    if (out[i] != 0.0f) fail_msg("fresh DiT output[%zu] = %g, not 0", i, (double)out[i]);
  const size_t nd = (size_t)(B * m->T * c.hidden_size);
  for (int64_t l = 0; l < c.depth; l++) {
    assert_memory_equal(m->train.res[l], m->train.acts[l].res_mid, nd * sizeof(float));
    assert_memory_equal(m->train.res[l], m->train.res[l + 1], nd * sizeof(float));
  }
  /* the stream is not trivially zero: the identity is the gates' doing */
  double s = 0;
  for (size_t i = 0; i < nd; i++) s += fabs(m->train.res[0][i]);
  assert_true(s > 0);
  free(x), free(out);
  sparq_dit_free(m);
}

/* ------------------------------------------------------------ gradients */

/* L = sum out * R of the double reference. */
static double ref_loss(const ref_model *rm, const float *x, const float *t, const int32_t *y, const float *extra,
                       int B, const float *R, size_t n, double *out) {
  ref_forward(rm, x, t, y, extra, B, out);
  double L = 0;
  for (size_t i = 0; i < n; i++) L += out[i] * R[i];
  return L;
}

static void check_gradients(int64_t extra_dim) {
  const sparq_dit_config c = tiny_config(extra_dim);
  sparq_dit *m = make(&c, 5);
  sparq_param_list *pl = sparq_dit_params(m);
  randomize(pl, 11);
  const int B = 3;
  const size_t n = image_numel(&c, B);
  float *x = frand(n, 2, 1.0f), *R = frand(n, 3, 1.0f), *out = malloc(n * sizeof(float));
  const float t[3] = {17.0f, 503.5f, 999.0f}, extra[3] = {0.3f, 1.0f, 0.75f};
  const int32_t y[3] = {2, 5, 2}; /* a repeated label and the null class */

  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_dit_forward(m, x, t, y, extra_dim ? extra : NULL, B, out), SPARQ_OK);
  assert_int_equal(sparq_dit_backward(m, R), SPARQ_OK);

  double *w = malloc(pl->numel * sizeof(double)), *ref = malloc(n * sizeof(double));
  for (size_t i = 0; i < pl->numel; i++) w[i] = pl->data[i];
  const ref_model rm = {&c, pl, w};
  ref_loss(&rm, x, t, y, extra, B, R, n, ref);
  double scale = 1, err = 0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i])), err = fmax(err, fabs(out[i] - ref[i]));
  if (!(err <= 1e-5 * scale)) fail_msg("forward error %.3g of %.3g against the double reference", err, scale);

  /* pos_embed is frozen: no gradient at all */
  const sparq_param *pos = sparq_params_find(pl, "pos_embed");
  for (size_t j = 0; j < pos->numel; j++) assert_true(pos->grad[j] == 0.0f);
  /* label rows that no sample used get nothing */
  const sparq_param *table = sparq_params_find(pl, "y_embedder.embedding_table.weight");
  for (int row = 0; row < 6; row++)
    if (row != 2 && row != 5)
      for (int i = 0; i < 32; i++) assert_true(table->grad[row * 32 + i] == 0.0f);

  /* every trainable tensor: its first and last element and 14 random ones */
  sparq_rng rng = sparq_rng_make(99, 0);
  double worst = 0;
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    if (p->frozen) continue;
    const size_t samples = p->numel < 16 ? p->numel : 16;
    double fd[16], g[16], tscale = 1e-3;
    size_t at[16];
    for (size_t s = 0; s < samples; s++) {
      at[s] = samples == p->numel ? s : s == 0 ? 0 : s == 1 ? p->numel - 1 : (size_t)sparq_rng_below(&rng, p->numel);
      if (p == table) at[s] = (s % 2 ? 2 : 5) * 32 + (s * 7) % 32; /* the used rows */
      const size_t k = p->offset + at[s];
      const double keep = w[k], h = 1e-5;
      w[k] = keep + h;
      const double up = ref_loss(&rm, x, t, y, extra, B, R, n, ref);
      w[k] = keep - h;
      const double down = ref_loss(&rm, x, t, y, extra, B, R, n, ref);
      w[k] = keep;
      fd[s] = (up - down) / (2 * h);
      g[s] = p->grad[at[s]];
      tscale = fmax(tscale, fabs(fd[s]));
    }
    for (size_t s = 0; s < samples; s++) {
      const double e = fabs(g[s] - fd[s]) / tscale;
      worst = fmax(worst, e);
      if (e > 5e-5)
        fail_msg("%s[%zu]: backward %.8g, finite differences %.8g (tensor scale %.3g)", p->name, at[s], g[s], fd[s],
                 tscale);
    }
  }
  print_message("extra_dim %d: worst gradient error %.3g of the tensor's largest gradient\n", (int)extra_dim, worst);

  /* a second backward adds the same again */
  float *first = malloc(pl->numel * sizeof(float));
  memcpy(first, pl->grad, pl->numel * sizeof(float));
  assert_int_equal(sparq_dit_backward(m, R), SPARQ_OK);
  for (size_t i = 0; i < pl->numel; i++)
    assert_true(fabsf(pl->grad[i] - 2 * first[i]) <= 1e-5f * (1 + fabsf(first[i])));
  free(first), free(w), free(ref), free(x), free(R), free(out);
  sparq_dit_free(m);
}

static void test_gradients_match_double_reference(void **state) {
  (void)state;
  check_gradients(16);
  check_gradients(0);
}

/* -------------------------------------------- inference and determinism */

static void forward_backward(sparq_dit *m, const float *x, const float *t, const int32_t *y, const float *e, int64_t B,
                             const float *R, float *out) {
  sparq_params_zero_grad(sparq_dit_params(m));
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, out), SPARQ_OK);
  assert_int_equal(sparq_dit_backward(m, R), SPARQ_OK);
}

static void test_infer_matches_forward(void **state) {
  (void)state;
  sparq_dit_config c = tiny_config(16);
  c.hidden_size = 64, c.num_heads = 2; /* head dim 32 */
  sparq_dit *m = make(&c, 4);
  sparq_param_list *pl = sparq_dit_params(m);
  randomize(pl, 12);
  const int64_t B = 5, B2 = 9;
  const size_t n = image_numel(&c, B), n2 = image_numel(&c, B2);
  float *x = frand(n, 5, 1.0f), *x2 = frand(n2, 6, 1.0f), *R = frand(n, 7, 1.0f);
  float *out = malloc(n * sizeof(float)), *inf = malloc(n * sizeof(float)), *inf2 = malloc(n2 * sizeof(float));
  const float t[9] = {1, 50, 100, 300, 999, 7, 8, 9, 10}, e[9] = {0.1f, 0.2f, 0.3f, 1, 0, 2, 3, 4, 5};
  const int32_t y[9] = {0, 1, 2, 3, 5, 4, 3, 2, 1};
  forward_backward(m, x, t, y, e, B, R, out);
  float *grad = malloc(pl->numel * sizeof(float));
  memcpy(grad, pl->grad, pl->numel * sizeof(float));
  assert_int_equal(sparq_dit_infer(m, x, t, y, e, B, SPARQ_ATTN_FLASH_F32, inf), SPARQ_OK);
  assert_memory_equal(inf, out, n * sizeof(float));

  /* an inference pass of another batch between forward and backward
   * changes nothing */
  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, out), SPARQ_OK);
  assert_int_equal(sparq_dit_infer(m, x2, t, y, e, B2, SPARQ_ATTN_FLASH_F32, inf2), SPARQ_OK);
  assert_int_equal(sparq_dit_backward(m, R), SPARQ_OK);
  assert_memory_equal(grad, pl->grad, pl->numel * sizeof(float));

  /* the other kernels: close to flash_f32 (ref_f64 very close) */
  for (int v = 0; v < SPARQ_ATTN_VARIANT_COUNT; v++) {
    assert_int_equal(sparq_dit_infer(m, x, t, y, e, B, (sparq_attn_variant)v, inf), SPARQ_OK);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (inf[i] - out[i]) * (double)(inf[i] - out[i]), den += (double)out[i] * out[i];
    const double rel = sqrt(num / den);
    print_message("%-9s relative L2 difference to flash_f32 %.3g\n", sparq_attn_variant_name((sparq_attn_variant)v),
                  rel);
    assert_true(rel < (v == SPARQ_ATTN_REF_F64 ? 1e-5 : 0.05));
  }
  assert_int_equal(sparq_dit_infer(m, x, t, y, e, B, SPARQ_ATTN_VARIANT_COUNT, inf), SPARQ_ERR_ARG);
  free(x), free(x2), free(R), free(out), free(inf), free(inf2), free(grad);
  sparq_dit_free(m);
}

/* Forward + backward of a Fashion-MNIST-shaped model on sizes that take
 * every parallel path: 1 and 2 threads give the same bits. */
static void test_threads_bit_identical(void **state) {
  (void)state;
  sparq_dit_config c = sparq_dit_config_default();
  c.hidden_size = 64, c.depth = 2, c.extra_dim = 32;
  const int64_t B = 16;
  const size_t n = image_numel(&c, B);
  float *x = frand(n, 8, 1.0f), *R = frand(n, 9, 1.0f), *out[2], *grad[2];
  float t[16], e[16];
  int32_t y[16];
  for (int b = 0; b < 16; b++) t[b] = (float)(b * 61), e[b] = 0.1f * (float)b, y[b] = b % 11;
  const int before = sparq_threads();
  for (int k = 0; k < 2; k++) {
    sparq_set_threads(k + 1);
    sparq_dit *m = make(&c, 6);
    randomize(sparq_dit_params(m), 13);
    out[k] = malloc(n * sizeof(float));
    forward_backward(m, x, t, y, e, B, R, out[k]);
    const size_t np = sparq_dit_params(m)->numel;
    grad[k] = malloc(np * sizeof(float));
    memcpy(grad[k], sparq_dit_params(m)->grad, np * sizeof(float));
    if (k == 1) {
      assert_memory_equal(out[0], out[1], n * sizeof(float));
      for (size_t i = 0; i < sparq_dit_params(m)->count; i++) {
        const sparq_param *p = &sparq_dit_params(m)->items[i];
        if (memcmp(grad[0] + p->offset, grad[1] + p->offset, p->numel * sizeof(float)) != 0)
          fail_msg("%s: gradient differs between 1 and 2 threads", p->name);
      }
    }
    sparq_dit_free(m);
  }
  sparq_set_threads(before);
  free(x), free(R), free(out[0]), free(out[1]), free(grad[0]), free(grad[1]);
}

/* Batches of different sizes reuse and grow the buffers; every sample's
 * output is its own (up to GEMM blocking). */
static void test_batch_sizes(void **state) {
  (void)state;
  const sparq_dit_config c = tiny_config(0);
  sparq_dit *m = make(&c, 2);
  randomize(sparq_dit_params(m), 3);
  const size_t per = image_numel(&c, 1);
  float *x = frand(per * 6, 10, 1.0f), *o1 = malloc(per * 6 * sizeof(float)), *o2 = malloc(per * 6 * sizeof(float));
  const float t[6] = {1, 2, 3, 4, 5, 6};
  const int32_t y[6] = {0, 1, 2, 3, 4, 5};
  assert_int_equal(sparq_dit_forward(m, x, t, y, NULL, 6, o1), SPARQ_OK);
  const int64_t sizes[3] = {2, 5, 1};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(sparq_dit_forward(m, x, t, y, NULL, sizes[k], o2), SPARQ_OK);
    for (size_t i = 0; i < per * (size_t)sizes[k]; i++) assert_true(fabsf(o1[i] - o2[i]) <= 1e-5f * (1 + fabsf(o1[i])));
    assert_int_equal(sparq_dit_infer(m, x, t, y, NULL, sizes[k], SPARQ_ATTN_FLASH_F32, o2), SPARQ_OK);
    for (size_t i = 0; i < per * (size_t)sizes[k]; i++) assert_true(fabsf(o1[i] - o2[i]) <= 1e-5f * (1 + fabsf(o1[i])));
  }
  assert_int_equal(sparq_dit_backward(m, o1), SPARQ_OK);
  free(x), free(o1), free(o2);
  sparq_dit_free(m);
}

/* ------------------------------------------------------------ zero_extra */

static void test_zero_extra(void **state) {
  (void)state;
  const sparq_dit_config c = tiny_config(16);
  sparq_dit *m = make(&c, 9);
  randomize(sparq_dit_params(m), 14);
  const int64_t B = 3;
  const size_t n = image_numel(&c, B);
  float *x = frand(n, 11, 1.0f), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
  const float t[3] = {10, 20, 30}, e1[3] = {0.0f, 0.5f, 1.0f}, e2[3] = {1.0f, 0.25f, 0.0f};
  const int32_t y[3] = {1, 2, 3};
  assert_int_equal(sparq_dit_forward(m, x, t, y, e1, B, a), SPARQ_OK);
  assert_int_equal(sparq_dit_forward(m, x, t, y, e2, B, b), SPARQ_OK);
  assert_true(memcmp(a, b, n * sizeof(float)) != 0); /* the extra input matters ... */
  sparq_dit_zero_extra(m);
  const sparq_param *cp = sparq_params_find(sparq_dit_params(m), "t_embedder.cond_proj.weight");
  for (size_t i = 0; i < cp->numel; i++) assert_true(cp->data[i] == 0.0f);
  assert_int_equal(sparq_dit_forward(m, x, t, y, e1, B, a), SPARQ_OK);
  assert_int_equal(sparq_dit_infer(m, x, t, y, e2, B, SPARQ_ATTN_FLASH_F32, b), SPARQ_OK);
  assert_memory_equal(a, b, n * sizeof(float)); /* ... and after zeroing it does not */
  sparq_dit_zero_extra(NULL);
  free(x), free(a), free(b);
  sparq_dit_free(m);
}

/* Spec gft.md 9.5: a GFT DiT grown from a CFG one (every matching tensor
 * copied, the beta projection zeroed) gives the CFG model's outputs for any
 * beta, bit for bit. */
static void test_gft_grown_from_cfg_matches_it(void **state) {
  (void)state;
  const sparq_dit_config cc = tiny_config(0);
  sparq_dit *cfg = make(&cc, 21);
  randomize(sparq_dit_params(cfg), 22);
  sparq_dit_config gc = cc;
  gc.extra_dim = 16;
  sparq_dit *gft = make(&gc, 23);
  sparq_param_list *gl = sparq_dit_params(gft);
  assert_int_equal(sparq_params_copy_matching(gl, sparq_dit_params(cfg)), gl->count - 1);
  sparq_dit_zero_extra(gft);
  const int64_t B = 3;
  const size_t n = image_numel(&cc, B);
  float *x = frand(n, 24, 1.0f), *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
  const float t[3] = {3, 400, 999}, betas[3] = {0.05f, 0.5f, 1.0f};
  const int32_t y[3] = {0, 4, 5}; /* 5 = the null class */
  assert_int_equal(sparq_dit_forward(cfg, x, t, y, NULL, B, want), SPARQ_OK);
  assert_int_equal(sparq_dit_forward(gft, x, t, y, betas, B, got), SPARQ_OK);
  assert_memory_equal(want, got, n * sizeof(float));
  free(x), free(want), free(got);
  sparq_dit_free(cfg);
  sparq_dit_free(gft);
}

/* ------------------------------------------------------------- metadata */

static const char *meta_value(const sparq_metadata_entry *meta, size_t count, const char *key) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(meta[i].key, key) == 0) return meta[i].value;
  return NULL;
}

static sparq_status roundtrip(const sparq_metadata_entry *meta, size_t count, sparq_dit_config *out) {
  char path[512];
  snprintf(path, sizeof path, "%s/dit_meta.safetensors", SPARQ_TEST_TMP);
  float one = 1.0f;
  sparq_named_tensor t = {"x", {.data = &one, .dtype = SPARQ_F32, .ndim = 1, .shape = {1}}};
  assert_int_equal(sparq_safetensors_write(path, &t, 1, meta, count), SPARQ_OK);
  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  sparq_status s = sparq_dit_config_from_metadata(st, out);
  sparq_safetensors_close(st);
  return s;
}

static void test_metadata(void **state) {
  (void)state;
  sparq_dit_config c = tiny_config(512);
  c.mlp_ratio = 2.5f, c.class_dropout_prob = 0.15f, c.extra_scale = 250.0f;
  sparq_dit *m = make(&c, 1);
  const sparq_metadata_entry *meta = NULL;
  size_t count = 0;
  sparq_dit_checkpoint_info(m, &meta, &count);
  assert_int_equal(count, 13);
  assert_string_equal(meta_value(meta, count, "model"), "DiT");
  assert_string_equal(meta_value(meta, count, "learn_sigma"), "false");
  assert_string_equal(meta_value(meta, count, "mlp_ratio"), "2.5");
  assert_string_equal(meta_value(meta, count, "class_dropout_prob"), "0.15");
  assert_string_equal(meta_value(meta, count, "extra_dim"), "512");
  assert_string_equal(meta_value(meta, count, "hidden_size"), "32");
  sparq_dit_config back;
  assert_int_equal(roundtrip(meta, count, &back), SPARQ_OK);
  assert_true(back.input_size == c.input_size && back.patch_size == c.patch_size &&
              back.in_channels == c.in_channels && back.hidden_size == c.hidden_size && back.depth == c.depth &&
              back.num_heads == c.num_heads && back.mlp_ratio == c.mlp_ratio && back.num_classes == c.num_classes &&
              back.class_dropout_prob == c.class_dropout_prob && back.extra_dim == c.extra_dim &&
              back.extra_scale == c.extra_scale);

  /* a checkpoint of another model, learn_sigma, a missing or bad key */
  sparq_metadata_entry bad[13];
  const struct {
    const char *key, *value;
  } edits[] = {{"model", "gpt"}, {"learn_sigma", "true"}, {"depth", "two"}, {"mlp_ratio", "nan"}, {"patch_size", "3"}};
  for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
    memcpy(bad, meta, sizeof bad);
    for (size_t i = 0; i < count; i++)
      if (strcmp(bad[i].key, edits[e].key) == 0) bad[i].value = edits[e].value;
    assert_int_equal(roundtrip(bad, count, &back), SPARQ_ERR_FORMAT);
  }
  memcpy(bad, meta, sizeof bad);
  for (size_t i = 0; i < count; i++)
    if (strcmp(bad[i].key, "num_heads") == 0) bad[i] = bad[count - 1];
  assert_int_equal(roundtrip(bad, count - 1, &back), SPARQ_ERR_FORMAT);
  sparq_dit_free(m);
}

/* ------------------------------------------------------- bad arguments */

static void test_bad_configs_and_arguments(void **state) {
  (void)state;
  const sparq_dit_config good = tiny_config(16);
  sparq_dit *m = NULL;
  assert_int_equal(sparq_dit_create(NULL, 1, &m), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_create(&good, 1, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_config_check(NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_config_check(&good), SPARQ_OK);
  sparq_dit_config defaults = sparq_dit_config_default();
  assert_int_equal(sparq_dit_config_check(&defaults), SPARQ_OK);
  for (int k = 0; k < 16; k++) {
    sparq_dit_config c = good;
    switch (k) {
      case 0: c.input_size = 0; break;
      case 1: c.patch_size = 3; break; /* 8 % 3 */
      case 2: c.patch_size = 0; break;
      case 3: c.in_channels = 0; break;
      case 4: c.hidden_size = 30; break; /* not a multiple of 4 */
      case 5: c.num_heads = 3; break;    /* 32 % 3 */
      case 6: c.hidden_size = 1024, c.num_heads = 2; break; /* head dim 512 */
      case 7: c.depth = 0; break;
      case 8: c.mlp_ratio = 0.0f; break;
      case 9: c.mlp_ratio = NAN; break;
      case 10: c.num_classes = -1; break;
      case 11: c.class_dropout_prob = 1.5f; break;
      case 12: c.class_dropout_prob = NAN; break;
      case 13: c.extra_dim = -1; break;
      case 14: c.extra_scale = INFINITY; break;
      case 15: c.num_heads = 0; break;
    }
    m = (sparq_dit *)&c; /* must be reset to NULL on failure */
    if (sparq_dit_create(&c, 1, &m) != SPARQ_ERR_ARG) fail_msg("bad config %d accepted", k);
    assert_null(m);
  }
  m = make(&good, 1);
  const int64_t B = 2;
  const size_t n = image_numel(&good, B);
  float *x = frand(n, 1, 1.0f), *out = malloc(n * sizeof(float));
  const float t[2] = {1, 2}, e[2] = {0, 1};
  int32_t y[2] = {0, 5};
  assert_int_equal(sparq_dit_backward(m, x), SPARQ_ERR_ARG); /* no forward yet */
  assert_int_equal(sparq_dit_forward(m, NULL, t, y, e, B, out), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_forward(m, x, NULL, y, e, B, out), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_forward(m, x, t, NULL, e, B, out), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_forward(m, x, t, y, NULL, B, out), SPARQ_ERR_ARG); /* extra_dim 16 needs extra */
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, 0, out), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, INT64_MAX / 2, out), SPARQ_ERR_ARG);
  y[1] = 6; /* num_classes 5: 0..5 */
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, out), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_infer(m, x, t, y, e, B, SPARQ_ATTN_FLASH_F32, out), SPARQ_ERR_ARG);
  y[1] = -1;
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, out), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_backward(m, x), SPARQ_ERR_ARG); /* the failed forward allows no backward */
  assert_int_equal(sparq_dit_infer(m, x, t, y, e, B, (sparq_attn_variant)-1, out), SPARQ_ERR_ARG);
  y[1] = 5;
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, out), SPARQ_OK);
  assert_int_equal(sparq_dit_backward(m, NULL), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_backward(NULL, x), SPARQ_ERR_ARG);
  assert_int_equal(sparq_dit_backward(m, x), SPARQ_OK);
  assert_null(sparq_dit_get_config(NULL));
  assert_null(sparq_dit_params(NULL));
  sparq_dit_free(NULL);
  sparq_dit_free(m);
  /* without the extra input, extra is ignored (NULL is fine) */
  const sparq_dit_config c0 = tiny_config(0);
  m = make(&c0, 1);
  assert_int_equal(sparq_dit_forward(m, x, t, y, NULL, B, out), SPARQ_OK);
  assert_int_equal(sparq_dit_forward(m, x, t, y, e, B, out), SPARQ_OK);
  sparq_dit_zero_extra(m); /* a no-op */
  sparq_dit_free(m);
  free(x), free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_shapes_and_init),
      cmocka_unit_test(test_null_row_follows_dropout),
      cmocka_unit_test(test_adaln_zero_identity),
      cmocka_unit_test(test_gradients_match_double_reference),
      cmocka_unit_test(test_infer_matches_forward),
      cmocka_unit_test(test_threads_bit_identical),
      cmocka_unit_test(test_batch_sizes),
      cmocka_unit_test(test_zero_extra),
      cmocka_unit_test(test_gft_grown_from_cfg_matches_it),
      cmocka_unit_test(test_metadata),
      cmocka_unit_test(test_bad_configs_and_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
