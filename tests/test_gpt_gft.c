/* The class-conditional GPT and Guidance-Free Training's autoregressive
 * variant (spec gft.md section 3 "Autoregressive", invariant 9.10): the
 * logit-combination loss, its stop-gradient, the conditional model's
 * gradients against central differences of a double-precision reference
 * (written here from nanoGPT's model.py plus LlamaGen's class prefix), the
 * zero-initialised fine-tune, dropped rows at beta 1, the inference pass,
 * the labelled corpus, sampling, and thread-count independence. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sparq/lm.h"
#include "gpt_ref_util.h"
#include "sparq/sparq.h"

/* ------------------------------------------- double-precision reference */

static void ref_logits(const ref_model *m, const int32_t *x, const int32_t *labels, const float *beta, int B, int T,
                       double *logits) {
  const sparq_gpt_config *c = m->c;
  const int C = (int)c->n_embd, Tp = T + 1, N = B * Tp;
  const int F = (int)c->gft_beta_dim, K = (int)c->num_classes;
  double *res = calloc((size_t)N * C, sizeof(double));
  const double *wte = P(m, "transformer.wte.weight"), *wpe = P(m, "transformer.wpe.weight");
  const double *cls = P(m, "cls_embedding.embedding_table.weight"), *proj = P(m, "t_embedder.cond_proj.weight");
  for (int b = 0; b < B; b++) {
    double *row = res + (size_t)b * Tp * C;
    for (int i = 0; i < C; i++) row[i] = cls[labels[b] * C + i];
    if (F > 0) {
      float freq[64], arg = 1000.0f * ((labels[b] == K || !beta) ? 1.0f : beta[b]);
      sparq_nn_timestep_embedding(freq, &arg, 1, F, 10000.0f);
      for (int i = 0; i < C; i++)
        for (int f = 0; f < F; f++) row[i] += proj[i * F + f] * freq[f];
    }
    for (int t = 0; t < T; t++)
      for (int i = 0; i < C; i++) row[(t + 1) * C + i] = wte[x[b * T + t] * C + i] + wpe[t * C + i];
  }
  ref_gpt_trunk(m, res, B, Tp, logits);
  free(res);
}

/* GFT's loss in double over rows [B, Tp, V]: CE of beta l_s + (1 - beta) l_u
 * (beta NULL: CE of l_s), mean over the byte rows (the prefix is not scored). */
static double ref_gft_loss(const double *ls, const double *lu, const float *beta, const int32_t *y, int B, int T,
                           int V) {
  const int Tp = T + 1;
  double total = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const size_t r = (size_t)(b * Tp + t + 1) * V;
      const double be = beta ? beta[b] : 1.0;
      double mx = -INFINITY, sum = 0, z[256];
      for (int v = 0; v < V; v++) {
        z[v] = be * ls[r + v] + (beta ? (1.0 - be) * lu[r + v] : 0.0);
        mx = fmax(mx, z[v]);
      }
      for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
      total += mx + log(sum) - z[y[b * T + t]];
    }
  return total / (B * T);
}

/* ------------------------------------------------------------- helpers */

static sparq_gpt_config cond_config(int64_t beta_dim) {
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = 2, c.n_head = 2, c.n_embd = 8, c.block_size = 6, c.vocab_size = 11, c.bias = true;
  c.num_classes = 3, c.gft_beta_dim = beta_dim;
  return c;
}

static sparq_gpt *make_model(const sparq_gpt_config *c, uint64_t seed) {
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(c, 3, &g), SPARQ_OK);
  randomize(sparq_gpt_params(g), seed);
  return g;
}

static void random_tokens(int32_t *t, int n, int V, uint64_t seed) {
  sparq_rng rng = sparq_rng_make(seed, 0);
  for (int i = 0; i < n; i++) t[i] = (int32_t)sparq_rng_below(&rng, (uint64_t)V);
}

static double *params_double(const sparq_param_list *pl) {
  double *w = malloc(pl->numel * sizeof(double));
  for (size_t i = 0; i < pl->numel; i++) w[i] = pl->data[i];
  return w;
}

/* Targets of the [B, T+1] rows the GFT loss scores: the prefix row ignored. */
static void row_targets(int32_t *rows, const int32_t *y, int B, int T) {
  for (int b = 0; b < B; b++) {
    rows[b * (T + 1)] = -1;
    for (int t = 0; t < T; t++) rows[b * (T + 1) + t + 1] = y[b * T + t];
  }
}

/* ------------------------------------------------------ the loss alone */

/* Invariant 10: at beta = 1 the combination loss is cross-entropy on l_s,
 * and softmax(beta l_s + (1 - beta) l_u) ignores a constant added to l_u. */
static void test_invariant10_logit_combination(void **state) {
  (void)state;
  enum { NS = 3, R = 5, V = 37, N = NS * R };
  float ls[N * V], lu[N * V], lu_shift[N * V], work[2 * N * V], d1[N * V], d2[N * V], dref[N * V] = {0};
  float probs[N * V], beta[NS];
  int32_t y[N];
  sparq_rng rng = sparq_rng_make(7, 1);
  sparq_rng_fill_normal(&rng, ls, N * V, 0.0f, 2.0f);
  sparq_rng_fill_normal(&rng, lu, N * V, 0.0f, 2.0f);
  random_tokens(y, N, V, 3);
  y[0] = y[R] = -1; /* ignored rows, as the prefix rows */
  for (int s = 0; s < NS; s++) beta[s] = 1.0f;

  float loss = 0, ce = 0, ls_alone = 0, lu_alone = 0;
  assert_int_equal(sparq_gpt_gft_loss(NS, R, V, beta, ls, lu, y, 0.5f, d1, work, &loss, &ls_alone, &lu_alone),
                   SPARQ_OK);
  assert_int_equal(sparq_nn_xent_forward(&ce, probs, ls, y, N, V), SPARQ_OK);
  sparq_nn_xent_backward(dref, probs, y, N, V, 0.5f);
  assert_true(fabsf(loss - ce) <= 1e-6f * fabsf(ce));
  assert_true(ls_alone == ce);
  for (int i = 0; i < N * V; i++) assert_true(fabsf(d1[i] - dref[i]) <= 1e-6f);
  /* beta NULL is the same plain cross-entropy */
  float loss_null = 0;
  assert_int_equal(sparq_gpt_gft_loss(NS, R, V, NULL, ls, NULL, y, 0.5f, d2, work, &loss_null, NULL, NULL),
                   SPARQ_OK);
  assert_true(loss_null == loss);
  assert_memory_equal(d1, d2, sizeof d1);

  /* shift invariance in l_u, one constant per row, at beta < 1 */
  for (int s = 0; s < NS; s++) beta[s] = 0.2f + 0.3f * (float)s;
  for (int n = 0; n < N; n++)
    for (int v = 0; v < V; v++) lu_shift[n * V + v] = lu[n * V + v] + 3.0f * (float)(n % 4) - 4.0f;
  float l1 = 0, l2 = 0;
  assert_int_equal(sparq_gpt_gft_loss(NS, R, V, beta, ls, lu, y, 1.0f, d1, work, &l1, NULL, NULL), SPARQ_OK);
  assert_int_equal(sparq_gpt_gft_loss(NS, R, V, beta, ls, lu_shift, y, 1.0f, d2, work, &l2, NULL, NULL), SPARQ_OK);
  assert_true(fabsf(l1 - l2) <= 1e-6f * fabsf(l1));
  for (int i = 0; i < N * V; i++) assert_true(fabsf(d1[i] - d2[i]) <= 1e-6f);
  /* a shift of l_s would not be (1 - beta) l_u's: the loss does change with l_u itself */
  for (int i = 0; i < N * V; i++) lu_shift[i] = lu[i] * 1.5f;
  assert_int_equal(sparq_gpt_gft_loss(NS, R, V, beta, ls, lu_shift, y, 1.0f, d2, work, &l2, NULL, NULL), SPARQ_OK);
  assert_true(fabsf(l1 - l2) > 1e-3f);
}

/* Stop-gradient at the loss: with l_u a constant, the analytic dL/dl_s
 * (beta (softmax(l_cond) - onehot) / N) matches central differences of the
 * double loss, for every element; there is no output for l_u at all. */
static void test_gft_loss_gradient_matches_differences(void **state) {
  (void)state;
  enum { NS = 2, R = 4, V = 13, N = NS * R, T = R - 1 };
  float ls[N * V], lu[N * V], work[2 * N * V], d[N * V], beta[NS] = {0.25f, 0.8f};
  int32_t y[NS * T], rows[N];
  sparq_rng rng = sparq_rng_make(8, 2);
  sparq_rng_fill_normal(&rng, ls, N * V, 0.0f, 1.5f);
  sparq_rng_fill_normal(&rng, lu, N * V, 0.0f, 1.5f);
  random_tokens(y, NS * T, V, 4);
  row_targets(rows, y, NS, T);
  float loss = 0;
  assert_int_equal(sparq_gpt_gft_loss(NS, R, V, beta, ls, lu, rows, 1.0f, d, work, &loss, NULL, NULL), SPARQ_OK);
  double dls[N * V], dlu[N * V];
  for (int i = 0; i < N * V; i++) dls[i] = ls[i], dlu[i] = lu[i];
  assert_true(fabs(loss - ref_gft_loss(dls, dlu, beta, y, NS, T, V)) < 1e-5);
  double max_err = 0;
  for (int i = 0; i < N * V; i++) {
    const double keep = dls[i], h = 1e-5;
    dls[i] = keep + h;
    const double up = ref_gft_loss(dls, dlu, beta, y, NS, T, V);
    dls[i] = keep - h;
    const double down = ref_gft_loss(dls, dlu, beta, y, NS, T, V);
    dls[i] = keep;
    const double fd = (up - down) / (2 * h);
    max_err = fmax(max_err, fabs(fd - d[i]));
    if (fabs(fd - d[i]) > 1e-6 + 1e-4 * fabs(fd)) fail_msg("dl_s[%d]: analytic %.8g, differences %.8g", i, d[i], fd);
  }
  print_message("loss gradient: max |error| %.3g\n", max_err);
}

/* ---------------------------------------------------------- the model */

/* Every gradient of a conditional GFT model (class table, beta projection,
 * nanoGPT's tensors) for plain conditional cross-entropy, one row of each
 * sequence kind: a class with beta, the null class (which sees beta 1). */
static void test_cond_gradients_match_double_reference(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  sparq_gpt *g = make_model(&c, 5);
  sparq_param_list *pl = sparq_gpt_params(g);
  enum { B = 3, T = 5, V = 11, Tp = T + 1 };
  int32_t x[B * T], y[B * T], labels[B] = {1, 3, 0};
  float beta[B] = {0.35f, 0.6f, 0.9f};
  random_tokens(x, B * T, V, 11);
  random_tokens(y, B * T, V, 12);
  double *w = params_double(pl);
  ref_model m = {&c, pl, w};
  double *lg = malloc(sizeof(double) * B * Tp * V);
  ref_logits(&m, x, labels, beta, B, T, lg);
  const double ref = ref_gft_loss(lg, NULL, NULL, y, B, T, V);
  float loss = 0;
  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_gpt_forward_cond(g, x, y, labels, beta, B, T, &loss), SPARQ_OK);
  assert_true(fabs(loss - ref) <= 1e-5 * fabs(ref));
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_OK);
  double max_err = 0;
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    for (size_t j = 0; j < p->numel; j++) {
      const size_t at = p->offset + j;
      const double keep = w[at], h = 1e-5;
      w[at] = keep + h;
      ref_logits(&m, x, labels, beta, B, T, lg);
      const double up = ref_gft_loss(lg, NULL, NULL, y, B, T, V);
      w[at] = keep - h;
      ref_logits(&m, x, labels, beta, B, T, lg);
      const double down = ref_gft_loss(lg, NULL, NULL, y, B, T, V);
      w[at] = keep;
      const double fd = (up - down) / (2 * h), err = fabs(fd - pl->grad[at]);
      max_err = fmax(max_err, err);
      if (err > 1e-4 + 2e-3 * fabs(fd))
        fail_msg("%s[%zu]: backward %.8g, finite differences %.8g", p->name, j, pl->grad[at], fd);
    }
  }
  /* the class row no sequence used gets nothing */
  const sparq_param *cls = sparq_params_find(pl, "cls_embedding.embedding_table.weight");
  for (int i = 0; i < 8; i++) assert_true(cls->grad[2 * 8 + i] == 0.0f);
  print_message("conditional model: max |error| %.3g\n", max_err);
  free(lg), free(w);
  sparq_gpt_free(g);
}

/* One GFT step of the model, as the LM task runs it: l_s from the training
 * forward at beta, l_u from the inference pass (null, 1), the combination
 * loss, backward from its logit gradient. */
static float gft_step(sparq_gpt *g, const int32_t *x, const int32_t *y, const int32_t *labels, const float *beta,
                      const float *beta_in, int B, int T, float *lu_out) {
  const int V = (int)sparq_gpt_get_config(g)->vocab_size, Tp = T + 1, N = B * Tp;
  int32_t null_labels[8], rows[64];
  for (int b = 0; b < B; b++) null_labels[b] = (int32_t)sparq_gpt_get_config(g)->num_classes;
  row_targets(rows, y, B, T);
  float *lu = malloc(sizeof(float) * N * V), *d = malloc(sizeof(float) * N * V);
  float *work = malloc(sizeof(float) * 2 * N * V);
  float loss = 0;
  assert_int_equal(sparq_gpt_forward_cond(g, x, NULL, labels, beta_in, B, T, NULL), SPARQ_OK);
  assert_int_equal(sparq_gpt_infer(g, x, null_labels, NULL, B, T, lu), SPARQ_OK);
  assert_int_equal(sparq_gpt_gft_loss(B, Tp, V, beta, sparq_gpt_logits(g), lu, rows, 1.0f, d, work, &loss, NULL, NULL),
                   SPARQ_OK);
  assert_int_equal(sparq_gpt_backward_logits(g, d), SPARQ_OK);
  if (lu_out) memcpy(lu_out, lu, sizeof(float) * N * V);
  free(lu), free(d), free(work);
  return loss;
}

/* Stop-gradient through the model: the parameter gradients of a GFT step
 * are the central differences of the double loss with l_u held at its
 * value (sg), for every parameter; without the sg (l_u recomputed at each
 * perturbed point) the differences are different, so the test can tell. */
static void test_gft_step_stop_gradient(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  sparq_gpt *g = make_model(&c, 6);
  sparq_param_list *pl = sparq_gpt_params(g);
  enum { B = 2, T = 4, V = 11, Tp = T + 1, N = B * Tp };
  int32_t x[B * T], y[B * T], labels[B] = {2, 0}, nulls[B] = {3, 3};
  float beta[B] = {0.3f, 0.75f};
  random_tokens(x, B * T, V, 21);
  random_tokens(y, B * T, V, 22);
  sparq_params_zero_grad(pl);
  const float loss = gft_step(g, x, y, labels, beta, beta, B, T, NULL);

  double *w = params_double(pl);
  ref_model m = {&c, pl, w};
  double ls[N * V], lu0[N * V], lu[N * V];
  ref_logits(&m, x, labels, beta, B, T, ls);
  ref_logits(&m, x, nulls, NULL, B, T, lu0);
  assert_true(fabs(loss - ref_gft_loss(ls, lu0, beta, y, B, T, V)) < 1e-5);
  double max_err = 0, max_nosg_gap = 0;
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    for (size_t j = 0; j < p->numel; j++) {
      const size_t at = p->offset + j;
      const double keep = w[at], h = 1e-5;
      double up, down, up_nosg, down_nosg;
      w[at] = keep + h;
      ref_logits(&m, x, labels, beta, B, T, ls);
      ref_logits(&m, x, nulls, NULL, B, T, lu);
      up = ref_gft_loss(ls, lu0, beta, y, B, T, V);
      up_nosg = ref_gft_loss(ls, lu, beta, y, B, T, V);
      w[at] = keep - h;
      ref_logits(&m, x, labels, beta, B, T, ls);
      ref_logits(&m, x, nulls, NULL, B, T, lu);
      down = ref_gft_loss(ls, lu0, beta, y, B, T, V);
      down_nosg = ref_gft_loss(ls, lu, beta, y, B, T, V);
      w[at] = keep;
      const double fd = (up - down) / (2 * h), fd_nosg = (up_nosg - down_nosg) / (2 * h);
      const double err = fabs(fd - pl->grad[at]);
      max_err = fmax(max_err, err);
      max_nosg_gap = fmax(max_nosg_gap, fabs(fd_nosg - pl->grad[at]));
      if (err > 1e-4 + 2e-3 * fabs(fd))
        fail_msg("%s[%zu]: GFT backward %.8g, differences with sg %.8g", p->name, j, pl->grad[at], fd);
    }
  }
  print_message("GFT step: max |error| %.3g with sg; %.3g from the no-sg differences\n", max_err, max_nosg_gap);
  assert_true(max_nosg_gap > 1e-2);
  free(w);
  sparq_gpt_free(g);
}

/* Spec 9.2 for the AR variant: a GFT step at beta = 1 on every row has the
 * loss and the gradients of plain conditional cross-entropy (1e-6). */
static void test_gft_at_beta1_is_conditional_ce(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  sparq_gpt *g = make_model(&c, 7);
  sparq_param_list *pl = sparq_gpt_params(g);
  enum { B = 3, T = 6, V = 11 };
  int32_t x[B * T], y[B * T], labels[B] = {0, 2, 1};
  const float ones[B] = {1, 1, 1};
  random_tokens(x, B * T, V, 31);
  random_tokens(y, B * T, V, 32);
  sparq_params_zero_grad(pl);
  const float lg = gft_step(g, x, y, labels, ones, ones, B, T, NULL);
  float *grad_gft = malloc(pl->numel * sizeof(float));
  memcpy(grad_gft, pl->grad, pl->numel * sizeof(float));
  sparq_params_zero_grad(pl);
  float lc = 0;
  assert_int_equal(sparq_gpt_forward_cond(g, x, y, labels, ones, B, T, &lc), SPARQ_OK);
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_OK);
  assert_true(fabsf(lg - lc) <= 1e-6f * fabsf(lc));
  for (size_t i = 0; i < pl->numel; i++)
    if (fabsf(grad_gft[i] - pl->grad[i]) > 1e-6f) fail_msg("grad[%zu]: %g vs %g", i, grad_gft[i], pl->grad[i]);
  free(grad_gft);
  sparq_gpt_free(g);
}

/* Spec 9.5: a conditional (CFG) model copied into a GFT model with the
 * beta projection zeroed gives the same logits, bit for bit, at any beta,
 * through the training forward and the inference pass. */
static void test_zero_init_finetune_bit_identical(void **state) {
  (void)state;
  sparq_gpt_config cc = cond_config(0), cg = cond_config(8);
  sparq_gpt *cfg = make_model(&cc, 8);
  sparq_gpt *gft = NULL;
  assert_int_equal(sparq_gpt_create(&cg, 99, &gft), SPARQ_OK);
  sparq_param_list *dst = sparq_gpt_params(gft);
  assert_int_equal(sparq_params_copy_matching(dst, sparq_gpt_params(cfg)), dst->count - 1);
  sparq_gpt_zero_beta_proj(gft);
  enum { B = 3, T = 6, V = 11, N = B * (T + 1) };
  int32_t x[B * T], labels[B] = {0, 2, 3};
  random_tokens(x, B * T, V, 41);
  float want[N * V], got[N * V];
  assert_int_equal(sparq_gpt_forward_cond(cfg, x, NULL, labels, NULL, B, T, NULL), SPARQ_OK);
  memcpy(want, sparq_gpt_logits(cfg), sizeof want);
  const float betas[3][B] = {{0.05f, 0.5f, 0.3f}, {1, 1, 1}, {0.7f, 0.01f, 0.9f}};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(sparq_gpt_forward_cond(gft, x, NULL, labels, betas[k], B, T, NULL), SPARQ_OK);
    assert_memory_equal(sparq_gpt_logits(gft), want, sizeof want);
    assert_int_equal(sparq_gpt_infer(gft, x, labels, betas[k], B, T, got), SPARQ_OK);
    assert_memory_equal(got, want, sizeof want);
  }
  sparq_gpt_free(cfg);
  sparq_gpt_free(gft);
}

/* Spec 9.6: null-labelled sequences see beta 1 whatever is passed; a real
 * class does see its beta. */
static void test_dropped_rows_see_beta1(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  sparq_gpt *g = make_model(&c, 9);
  enum { B = 2, T = 5, V = 11, N = B * (T + 1) };
  int32_t x[B * T], labels[B] = {3, 1};
  random_tokens(x, B * T, V, 51);
  const float b1[B] = {1.0f, 1.0f}, b2[B] = {0.2f, 0.2f};
  float l1[N * V], l2[N * V];
  assert_int_equal(sparq_gpt_infer(g, x, labels, b1, B, T, l1), SPARQ_OK);
  assert_int_equal(sparq_gpt_infer(g, x, labels, b2, B, T, l2), SPARQ_OK);
  const size_t half = (size_t)(T + 1) * V;
  assert_memory_equal(l1, l2, half * sizeof(float)); /* the null sequence */
  assert_memory_not_equal(l1 + half, l2 + half, half * sizeof(float));
  /* NULL gft_beta is beta 1 */
  assert_int_equal(sparq_gpt_infer(g, x, labels, NULL, B, T, l2), SPARQ_OK);
  assert_memory_equal(l1, l2, sizeof l1);
  sparq_gpt_free(g);
}

/* Spec 9.7: the inference pass gives the training forward's logits bit for
 * bit, keeps nothing, and leaves the forward's activations for backward. */
static void test_infer_matches_forward_and_keeps_activations(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  sparq_gpt *g = make_model(&c, 10);
  sparq_param_list *pl = sparq_gpt_params(g);
  enum { B = 2, T = 6, V = 11, N = B * (T + 1) };
  int32_t x[B * T], y[B * T], labels[B] = {0, 2}, other[B] = {3, 1};
  const float beta[B] = {0.4f, 0.9f};
  random_tokens(x, B * T, V, 61);
  random_tokens(y, B * T, V, 62);
  float inf[N * V], inf2[N * V];
  assert_int_equal(sparq_gpt_infer(g, x, labels, beta, B, T, inf), SPARQ_OK);
  assert_int_equal(sparq_gpt_infer(g, x, labels, beta, B, T, inf2), SPARQ_OK);
  assert_memory_equal(inf, inf2, sizeof inf);
  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_gpt_forward_cond(g, x, y, labels, beta, B, T, NULL), SPARQ_OK);
  assert_memory_equal(sparq_gpt_logits(g), inf, sizeof inf);
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_OK);
  float *want = malloc(pl->numel * sizeof(float));
  memcpy(want, pl->grad, pl->numel * sizeof(float));
  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_gpt_forward_cond(g, x, y, labels, beta, B, T, NULL), SPARQ_OK);
  assert_int_equal(sparq_gpt_infer(g, x, other, NULL, B, T, inf2), SPARQ_OK); /* in between */
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_OK);
  assert_memory_equal(pl->grad, want, pl->numel * sizeof(float));
  free(want);
  /* bad condition inputs are refused with a message */
  int32_t bad[B] = {0, 4};
  assert_int_equal(sparq_gpt_infer(g, x, bad, NULL, B, T, inf), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "labels[1]"));
  const float nan_beta[B] = {0.5f, NAN};
  assert_int_equal(sparq_gpt_forward_cond(g, x, y, labels, nan_beta, B, T, NULL), SPARQ_ERR_ARG);
  sparq_gpt_free(g);
  sparq_gpt_config u = cond_config(0);
  u.num_classes = 0;
  g = make_model(&u, 1);
  assert_int_equal(sparq_gpt_forward_cond(g, x, y, labels, NULL, B, T, NULL), SPARQ_ERR_ARG);
  sparq_gpt_free(g);
}

/* The config travels through checkpoint metadata; an unconditional model's
 * metadata is what it always was (8 entries, no class keys). */
static void test_config_metadata_roundtrip(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  sparq_gpt *g = make_model(&c, 11);
  const sparq_ckpt_alias *al;
  const sparq_metadata_entry *meta;
  size_t na, nm;
  sparq_gpt_checkpoint_info(g, &al, &na, &meta, &nm);
  char path[512];
  snprintf(path, sizeof path, "%s/gpt_gft_cfg.safetensors", SPARQ_TEST_TMP);
  assert_int_equal(sparq_checkpoint_save(path, sparq_gpt_params(g), NULL, al, na, meta, nm), SPARQ_OK);
  sparq_safetensors *st = NULL;
  sparq_gpt_config back;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  assert_int_equal(sparq_gpt_config_from_metadata(st, &back), SPARQ_OK);
  sparq_safetensors_close(st);
  assert_int_equal(back.num_classes, 3);
  assert_int_equal(back.gft_beta_dim, 8);
  sparq_gpt_free(g);
  c.num_classes = 0, c.gft_beta_dim = 0;
  g = make_model(&c, 11);
  sparq_gpt_checkpoint_info(g, &al, &na, &meta, &nm);
  assert_int_equal(nm, 8);
  for (size_t i = 0; i < nm; i++) assert_null(strstr(meta[i].key, "class"));
  assert_int_equal(sparq_gpt_params(g)->count, 2 + 2 * 12 + 2);
  assert_int_equal(sparq_gpt_rows(g, 5), 5);
  sparq_gpt_free(g);
  c.gft_beta_dim = 8; /* a beta input needs classes */
  assert_int_equal(sparq_gpt_create(&c, 1, &g), SPARQ_ERR_ARG);
  remove(path);
}

/* --------------------------------------------------- data and sampling */

static void write_file(const char *dir, const char *name, size_t size, char fill) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (size_t i = 0; i < size; i++) fputc(fill + (int)(i % 7), f);
  fclose(f);
}

/* One class per file of at least SPARQ_TEXT_CLASS_MIN_BYTES bytes, split
 * 90/10 per file; windows stay inside one class and carry its label. */
static void test_fortunes_classes(void **state) {
  (void)state;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/fortunes_classes_XXXXXX", SPARQ_TEST_TMP);
  assert_non_null(mkdtemp(dir));
  write_file(dir, "b", 5000, 'a');
  write_file(dir, "a", 100, 'x');
  write_file(dir, "c", SPARQ_TEXT_CLASS_MIN_BYTES, 'k');
  write_file(dir, "c.dat", 9000, '0');
  sparq_text_classes tc;
  assert_int_equal(sparq_fortunes_classes_load(dir, &tc), SPARQ_OK);
  assert_int_equal(tc.count, 2);
  assert_int_equal(tc.skipped, 1);
  assert_string_equal(tc.classes[0].name, "b");
  assert_string_equal(tc.classes[1].name, "c");
  assert_int_equal(tc.corpus.size, 100 + 5000 + SPARQ_TEXT_CLASS_MIN_BYTES);
  assert_ptr_equal(tc.classes[0].train, tc.corpus.bytes + 100);
  assert_int_equal(tc.classes[0].train_size, 4500);
  assert_int_equal(tc.classes[0].val_size, 500);
  assert_ptr_equal(tc.classes[1].val, tc.corpus.bytes + 5100 + SPARQ_TEXT_CLASS_MIN_BYTES * 9 / 10);
  enum { B = 64, T = 16 };
  int32_t x[B * T], y[B * T], labels[B];
  sparq_rng rng = sparq_rng_make(1, 2);
  int seen[2] = {0, 0};
  for (int val = 0; val < 2; val++) {
    assert_int_equal(sparq_text_class_batch(tc.classes, tc.count, val, B, T, &rng, x, y, labels), SPARQ_OK);
    for (int b = 0; b < B; b++) {
      assert_true(labels[b] == 0 || labels[b] == 1);
      seen[labels[b]]++;
      const char base = labels[b] == 0 ? 'a' : 'k';
      for (int t = 0; t < T; t++) {
        assert_true(x[b * T + t] >= base && x[b * T + t] < base + 7);
        assert_int_equal(y[b * T + t], base + (x[b * T + t] - base + 1) % 7);
      }
    }
  }
  assert_true(seen[0] > 0 && seen[1] > 0);
  assert_int_equal(sparq_text_class_batch(tc.classes, tc.count, true, B, 600, &rng, x, y, labels), SPARQ_ERR_ARG);
  sparq_text_classes_free(&tc);
  sparq_text_classes_free(&tc);
  const char *names[] = {"a", "b", "c", "c.dat"};
  for (int i = 0; i < 4; i++) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    remove(path);
  }
  rmdir(dir);
}

/* GFT sampling is one forward per token, CFG two; greedy sampling picks the
 * argmax of the last byte row (after the prefix row); bad options are
 * refused. */
static void test_generate_cond(void **state) {
  (void)state;
  sparq_gpt_config c = cond_config(8);
  c.vocab_size = 256, c.block_size = 8;
  sparq_gpt *g = make_model(&c, 12);
  const int32_t prompt[2] = {'h', 'i'};
  int32_t a[20], b[20];
  int64_t nfe = 0;
  sparq_gpt_sampling o = {.temperature = 1.0f, .top_k = 0, .label = 1, .gft_beta = 0.5f, .cfg_scale = 1.0f};
  sparq_rng r1 = sparq_rng_make(3, 0), r2 = sparq_rng_make(3, 0);
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 20, &o, &r1, a, &nfe), SPARQ_OK);
  assert_int_equal(nfe, 1);
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 20, &o, &r2, b, NULL), SPARQ_OK);
  assert_memory_equal(a, b, sizeof a);
  /* greedy at beta 1 is the argmax of the conditional logits */
  o.gft_beta = 1.0f, o.temperature = 0.0f;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 1, &o, &r1, a, NULL), SPARQ_OK);
  const int32_t label = 1;
  float lg[3 * 256];
  assert_int_equal(sparq_gpt_infer(g, prompt, &label, NULL, 1, 2, lg), SPARQ_OK);
  int best = 0;
  for (int v = 1; v < 256; v++)
    if (lg[2 * 256 + v] > lg[2 * 256 + best]) best = v;
  assert_int_equal(a[0], best);
  o.temperature = 1.0f, o.cfg_scale = 3.0f;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 20, &o, &r1, a, &nfe), SPARQ_OK);
  assert_int_equal(nfe, 2);
  /* the plain generate of a conditional model is its null class */
  sparq_gpt_sampling u = {.temperature = 0.7f, .top_k = 5, .label = 3, .gft_beta = 1.0f, .cfg_scale = 1.0f};
  r1 = sparq_rng_make(4, 0), r2 = sparq_rng_make(4, 0);
  assert_int_equal(sparq_gpt_generate(g, prompt, 2, 20, 0.7f, 5, &r1, a), SPARQ_OK);
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 20, &u, &r2, b, NULL), SPARQ_OK);
  assert_memory_equal(a, b, sizeof a);
  /* rejections */
  sparq_gpt_sampling bad = o;
  bad.cfg_scale = 1.0f, bad.gft_beta = 1.5f;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 4, &bad, &r1, a, NULL), SPARQ_ERR_ARG);
  bad.gft_beta = 0.0f;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 4, &bad, &r1, a, NULL), SPARQ_ERR_ARG);
  bad.gft_beta = 1.0f, bad.cfg_scale = 0.5f;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 4, &bad, &r1, a, NULL), SPARQ_ERR_ARG);
  bad.cfg_scale = 1.0f, bad.label = 4;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 4, &bad, &r1, a, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "class 4"));
  sparq_gpt_free(g);
  c.gft_beta_dim = 0;
  g = make_model(&c, 12);
  bad = o, bad.cfg_scale = 1.0f, bad.gft_beta = 0.5f;
  assert_int_equal(sparq_gpt_generate_cond(g, prompt, 2, 4, &bad, &r1, a, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "GFT"));
  sparq_gpt_free(g);
}

/* ------------------------------------------------ the task, end to end */

typedef struct task_run {
  float losses[3];
  float *grad;
  size_t numel;
  char extra[128];
  float eval;
} task_run;

/* Three GFT micro-batches of the LM task (gradients accumulated) on two
 * synthetic classes, then its evaluation, at the given thread count. */
static void run_task(int threads, bool gft, task_run *out) {
  sparq_set_threads(threads);
  static uint8_t text[2][3000];
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 3000; i++) text[k][i] = (uint8_t)(k ? 'a' + (i * 7 + i / 13) % 26 : ' ' + (i * i) % 90);
  sparq_text_class classes[2];
  for (int k = 0; k < 2; k++)
    classes[k] = (sparq_text_class){.name = {k ? 'y' : 'x'}, .train = text[k], .train_size = 2700,
                                    .val = text[k] + 2700, .val_size = 300};
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = 2, c.n_head = 2, c.n_embd = 32, c.block_size = 24, c.num_classes = 2, c.gft_beta_dim = gft ? 16 : 0;
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 5, &g), SPARQ_OK);
  sparq_lm_task task;
  assert_int_equal(sparq_lm_task_init(&task, g, text[0], 2700, text[0] + 2700, 300, 6, 24, 2, 9), SPARQ_OK);
  assert_int_equal(sparq_lm_task_set_classes(&task, classes, 2, 0.3f, gft), SPARQ_OK);
  sparq_trainable m;
  sparq_lm_task_trainable(&task, &m);
  sparq_params_zero_grad(m.params);
  sparq_rng rng = sparq_rng_make(77, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(m.train_micro(m.self, &rng, 1.0f / 3, &out->losses[i]), SPARQ_OK);
  out->numel = m.params->numel;
  out->grad = malloc(m.params->numel * sizeof(float));
  memcpy(out->grad, m.params->grad, m.params->numel * sizeof(float));
  out->extra[0] = '\0';
  if (m.log_extra) m.log_extra(m.self, out->extra, sizeof out->extra);
  assert_int_equal(m.eval(m.self, &out->eval), SPARQ_OK);
  bool has_guidance = false;
  for (size_t i = 0; i < m.meta_count; i++)
    if (!strcmp(m.meta[i].key, "guidance")) has_guidance = !strcmp(m.meta[i].value, gft ? "gft" : "cfg");
  assert_true(has_guidance);
  sparq_lm_task_free(&task);
  sparq_gpt_free(g);
}

/* Same seed and thread count: the same bits; 1 and 2 threads: the same bits
 * too (every kernel is thread-count independent). */
static void test_task_determinism(void **state) {
  (void)state;
  const int before = sparq_threads();
  for (int gft = 0; gft < 2; gft++) {
    task_run a, b, c;
    run_task(2, gft, &a);
    run_task(2, gft, &b);
    run_task(1, gft, &c);
    const size_t n = sizeof a.losses;
    assert_memory_equal(a.losses, b.losses, n);
    assert_memory_equal(a.losses, c.losses, n);
    assert_true(a.eval == b.eval && a.eval == c.eval);
    assert_string_equal(a.extra, c.extra);
    if (gft) {
      assert_non_null(strstr(a.extra, "\"loss_s\":"));
      assert_non_null(strstr(a.extra, "\"loss_u\":"));
    } else {
      assert_string_equal(a.extra, "");
    }
    assert_memory_equal(a.grad, b.grad, a.numel * sizeof(float));
    assert_memory_equal(a.grad, c.grad, a.numel * sizeof(float));
    print_message("%s: losses %.4f %.4f %.4f, eval %.4f %s\n", gft ? "gft" : "cfg", a.losses[0], a.losses[1],
                  a.losses[2], a.eval, a.extra);
    free(a.grad), free(b.grad), free(c.grad);
  }
  sparq_set_threads(before);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_invariant10_logit_combination),
      cmocka_unit_test(test_gft_loss_gradient_matches_differences),
      cmocka_unit_test(test_cond_gradients_match_double_reference),
      cmocka_unit_test(test_gft_step_stop_gradient),
      cmocka_unit_test(test_gft_at_beta1_is_conditional_ce),
      cmocka_unit_test(test_zero_init_finetune_bit_identical),
      cmocka_unit_test(test_dropped_rows_see_beta1),
      cmocka_unit_test(test_infer_matches_forward_and_keeps_activations),
      cmocka_unit_test(test_config_metadata_roundtrip),
      cmocka_unit_test(test_fortunes_classes),
      cmocka_unit_test(test_generate_cond),
      cmocka_unit_test(test_task_determinism),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
