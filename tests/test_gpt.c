/* The GPT model as a whole: nanoGPT's parameter names and initialisation,
 * the FP32 forward against a double-precision reference written here from
 * nanoGPT's model.py, every gradient against central finite differences of
 * that reference, sampling and nanoGPT-style file scoring. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpt_ref_util.h"
#include "sparq/sparq.h"

/* ------------------------------------------- double-precision reference */

/* The mean cross-entropy of the model on (x, y) in double, nanoGPT's forward. */
static double ref_loss(const ref_model *m, const int32_t *x, const int32_t *y, int B, int T) {
  const int C = (int)m->c->n_embd, V = (int)m->c->vocab_size, N = B * T;
  double *res = calloc((size_t)N * C, sizeof(double)), *logits = calloc((size_t)N * V, sizeof(double));
  const double *wte = P(m, "transformer.wte.weight"), *wpe = P(m, "transformer.wpe.weight");
  for (int n = 0; n < N; n++)
    for (int i = 0; i < C; i++) res[n * C + i] = wte[x[n] * C + i] + wpe[(n % T) * C + i];
  ref_gpt_trunk(m, res, B, T, logits);
  double loss = 0;
  for (int n = 0; n < N; n++) {
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, logits[n * V + v]);
    for (int v = 0; v < V; v++) sum += exp(logits[n * V + v] - mx);
    loss += mx + log(sum) - logits[n * V + y[n]];
  }
  free(res), free(logits);
  return loss / N;
}

static sparq_gpt_config tiny_config(bool bias) {
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = 2, c.n_head = 2, c.n_embd = 8, c.block_size = 6, c.vocab_size = 11, c.bias = bias;
  return c;
}

static void check_gradients(bool bias) {
  sparq_gpt_config c = tiny_config(bias);
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 3, &g), SPARQ_OK);
  sparq_param_list *pl = sparq_gpt_params(g);
  randomize(pl, 5);
  const int B = 2, T = 6, N = B * T;
  int32_t x[12], y[12];
  sparq_rng rng = sparq_rng_make(11, 0);
  for (int i = 0; i < N; i++) x[i] = (int32_t)sparq_rng_below(&rng, 11), y[i] = (int32_t)sparq_rng_below(&rng, 11);

  double *w = malloc(pl->numel * sizeof(double));
  for (size_t i = 0; i < pl->numel; i++) w[i] = pl->data[i];
  ref_model m = {&c, pl, w};
  double ref = ref_loss(&m, x, y, B, T);
  float loss = 0;
  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_gpt_forward(g, x, y, B, T, &loss), SPARQ_OK);
  assert_true(fabs(loss - ref) <= 1e-5 * fabs(ref));
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_OK);

  /* Every parameter element: central differences of the double model. */
  double max_grad = 0, max_err = 0;
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    for (size_t j = 0; j < p->numel; j++) {
      size_t at = p->offset + j;
      double keep = w[at], h = 1e-5;
      w[at] = keep + h;
      double up = ref_loss(&m, x, y, B, T);
      w[at] = keep - h;
      double down = ref_loss(&m, x, y, B, T);
      w[at] = keep;
      double fd = (up - down) / (2 * h);
      max_grad = fmax(max_grad, fabs(fd));
      double err = fabs(fd - pl->grad[at]);
      if (err > max_err) max_err = err;
      if (err > 1e-4 + 2e-3 * fabs(fd))
        fail_msg("%s[%zu]: backward %.8g, finite differences %.8g", p->name, j, pl->grad[at], fd);
    }
  }
  print_message("bias %d: max |grad| %.3g, max |error| %.3g\n", bias, max_grad, max_err);
  free(w);
  sparq_gpt_free(g);
}

static void test_gradients_match_double_reference(void **state) {
  (void)state;
  check_gradients(true);
  check_gradients(false);
}

static void test_nanogpt_names_and_init(void **state) {
  (void)state;
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = 2, c.n_embd = 48, c.n_head = 4, c.block_size = 32;
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 1, &g), SPARQ_OK);
  sparq_param_list *pl = sparq_gpt_params(g);
  static const char *names[] = {
      "transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
      "transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
      "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias", "transformer.h.0.ln_2.weight",
      "transformer.h.0.ln_2.bias", "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
      "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias", "transformer.h.1.ln_1.weight",
      "transformer.h.1.mlp.c_proj.bias", "transformer.ln_f.weight", "transformer.ln_f.bias"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!sparq_params_find(pl, names[i])) fail_msg("missing %s", names[i]);
  assert_int_equal(pl->count, 2 + 2 * 12 + 2);
  const sparq_param *attn = sparq_params_find(pl, "transformer.h.0.attn.c_attn.weight");
  assert_int_equal(attn->shape[0], 3 * 48);
  assert_int_equal(attn->shape[1], 48);
  const sparq_param *fcp = sparq_params_find(pl, "transformer.h.1.mlp.c_proj.weight");
  assert_int_equal(fcp->shape[0], 48);
  assert_int_equal(fcp->shape[1], 4 * 48);
  /* Standard deviations: 0.02, and 0.02 / sqrt(2 n_layer) for c_proj. */
  const struct {
    const char *name;
    double std;
  } stds[] = {{"transformer.wte.weight", 0.02},
              {"transformer.h.0.mlp.c_fc.weight", 0.02},
              {"transformer.h.0.attn.c_proj.weight", 0.01},
              {"transformer.h.1.mlp.c_proj.weight", 0.01}};
  for (size_t i = 0; i < 4; i++) {
    const sparq_param *p = sparq_params_find(pl, stds[i].name);
    double s2 = 0, s1 = 0;
    for (size_t j = 0; j < p->numel; j++) s1 += p->data[j], s2 += (double)p->data[j] * p->data[j];
    double sd = sqrt(s2 / p->numel - (s1 / p->numel) * (s1 / p->numel));
    if (fabs(sd - stds[i].std) > 0.1 * stds[i].std) fail_msg("%s: std %g, want %g", stds[i].name, sd, stds[i].std);
  }
  const sparq_param *ln = sparq_params_find(pl, "transformer.ln_f.weight");
  const sparq_param *lb = sparq_params_find(pl, "transformer.h.0.attn.c_attn.bias");
  for (size_t j = 0; j < ln->numel; j++) assert_true(ln->data[j] == 1.0f);
  for (size_t j = 0; j < lb->numel; j++) assert_true(lb->data[j] == 0.0f);
  assert_true(lb->decay == false);
  assert_true(attn->decay == true);
  sparq_gpt_free(g);

  c.bias = false;
  assert_int_equal(sparq_gpt_create(&c, 1, &g), SPARQ_OK);
  assert_null(sparq_params_find(sparq_gpt_params(g), "transformer.h.0.ln_1.bias"));
  assert_int_equal(sparq_gpt_params(g)->count, 2 + 2 * 6 + 1);
  sparq_gpt_free(g);

  c.n_head = 5; /* 48 % 5 != 0 */
  assert_int_equal(sparq_gpt_create(&c, 1, &g), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "n_head"));
}

static void test_bad_tokens_rejected(void **state) {
  (void)state;
  sparq_gpt_config c = tiny_config(true);
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 1, &g), SPARQ_OK);
  int32_t x[4] = {1, 2, 11, 0}, y[4] = {1, 2, 3, 4};
  assert_int_equal(sparq_gpt_forward(g, x, y, 1, 4, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "x[2]"));
  x[2] = 3;
  assert_int_equal(sparq_gpt_forward(g, x, y, 1, 7, NULL), SPARQ_ERR_ARG); /* T > block_size */
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_ERR_ARG);            /* nothing to differentiate */
  sparq_gpt_free(g);
}

static void test_generate_and_eval_bytes(void **state) {
  (void)state;
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = 1, c.n_head = 2, c.n_embd = 16, c.block_size = 8;
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 4, &g), SPARQ_OK);
  randomize(sparq_gpt_params(g), 2);
  int32_t prompt[3] = {'a', 'b', 'c'}, out1[20], out2[20];
  sparq_rng r1 = sparq_rng_make(5, 0), r2 = sparq_rng_make(5, 0);
  assert_int_equal(sparq_gpt_generate(g, prompt, 3, 20, 0.9f, 10, &r1, out1), SPARQ_OK);
  assert_int_equal(sparq_gpt_generate(g, prompt, 3, 20, 0.9f, 10, &r2, out2), SPARQ_OK);
  assert_memory_equal(out1, out2, sizeof out1);
  /* Temperature 0 is the argmax of the last position's logits. */
  assert_int_equal(sparq_gpt_generate(g, prompt, 3, 1, 0.0f, 0, &r1, out1), SPARQ_OK);
  assert_int_equal(sparq_gpt_forward(g, prompt, NULL, 1, 3, NULL), SPARQ_OK);
  const float *lg = sparq_gpt_logits(g) + 2 * 256;
  int best = 0;
  for (int v = 1; v < 256; v++)
    if (lg[v] > lg[best]) best = v;
  assert_int_equal(out1[0], best);
  /* top-k 1 is greedy too. */
  assert_int_equal(sparq_gpt_generate(g, prompt, 3, 1, 1.0f, 1, &r1, out2), SPARQ_OK);
  assert_int_equal(out2[0], best);

  /* eval_bytes: 3 windows of 8 fit in 26 bytes (i = 0, 8, 16; 16 + 9 <= 26). */
  uint8_t data[26];
  for (int i = 0; i < 26; i++) data[i] = (uint8_t)(i * 7 + 3);
  double loss = 0, manual = 0;
  int64_t n = 0;
  assert_int_equal(sparq_gpt_eval_bytes(g, data, 26, &loss, &n), SPARQ_OK);
  assert_int_equal(n, 24);
  for (int w = 0; w < 3; w++) {
    int32_t x[8], y[8];
    for (int t = 0; t < 8; t++) x[t] = data[8 * w + t], y[t] = data[8 * w + t + 1];
    float l;
    assert_int_equal(sparq_gpt_forward(g, x, y, 1, 8, &l), SPARQ_OK);
    manual += l / 3.0;
  }
  assert_true(fabs(loss - manual) < 1e-5);
  assert_int_equal(sparq_gpt_eval_bytes(g, data, 8, &loss, &n), SPARQ_ERR_ARG);
  sparq_gpt_free(g);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_nanogpt_names_and_init),
      cmocka_unit_test(test_gradients_match_double_reference),
      cmocka_unit_test(test_bad_tokens_rejected),
      cmocka_unit_test(test_generate_and_eval_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
