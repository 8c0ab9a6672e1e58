/* The GPT with MoE blocks (gpt.h, lm.h): tensor names and metadata, the
 * integration's gradients against finite differences of the objective
 * CE + lambda L_reg (spec remoe.md section 3), the inference pass, and
 * invariant 9 (bitwise-identical lambda traces from the same seed, at 1 and
 * 2 threads). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/sparq.h"

static sparq_gpt_config moe_config(sparq_moe_router r, uint64_t layers) {
  sparq_gpt_config c = sparq_gpt_config_default();
  c.n_layer = 2, c.n_head = 2, c.n_embd = 16, c.block_size = 8, c.vocab_size = 256;
  c.moe_router = r, c.moe_experts = 3, c.moe_topk = 1, c.moe_layers = layers;
  return c;
}

static void test_names_and_metadata(void **state) {
  (void)state;
  sparq_gpt_config c = moe_config(SPARQ_MOE_RELU, 2); /* block 1 only */
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 1, &g), SPARQ_OK);
  sparq_param_list *pl = sparq_gpt_params(g);
  assert_non_null(sparq_params_find(pl, "transformer.h.0.mlp.c_fc.weight"));
  assert_null(sparq_params_find(pl, "transformer.h.1.mlp.c_fc.weight"));
  sparq_param *r = sparq_params_find(pl, "transformer.h.1.mlp.router.weight");
  sparq_param *fc = sparq_params_find(pl, "transformer.h.1.mlp.experts.c_fc.weight");
  sparq_param *pb = sparq_params_find(pl, "transformer.h.1.mlp.experts.c_proj.bias");
  assert_non_null(r), assert_non_null(fc), assert_non_null(pb);
  assert_int_equal(fc->ndim, 3);
  assert_true(fc->shape[0] == 3 && fc->shape[1] == 64 && fc->shape[2] == 16);
  assert_false(pb->decay);
  for (size_t i = 0; i < pb->numel; i++) assert_true(pb->data[i] == 0.0f);
  assert_int_equal(sparq_gpt_moe_count(g), 1);
  /* the config survives a checkpoint */
  char path[512];
  snprintf(path, sizeof path, "%s/moe-gpt.safetensors", SPARQ_TEST_TMP);
  const sparq_ckpt_alias *al;
  size_t na, nm;
  const sparq_metadata_entry *meta;
  sparq_gpt_checkpoint_info(g, &al, &na, &meta, &nm);
  assert_int_equal(sparq_checkpoint_save(path, pl, NULL, al, na, meta, nm), SPARQ_OK);
  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  sparq_gpt_config back;
  assert_int_equal(sparq_gpt_config_from_metadata(st, &back), SPARQ_OK);
  assert_string_equal(sparq_safetensors_metadata(st, "moe_layers"), "1");
  sparq_safetensors_close(st);
  assert_int_equal(back.moe_router, SPARQ_MOE_RELU);
  assert_true(back.moe_experts == 3 && back.moe_topk == 1 && back.moe_layers == 2);
  /* bad configs */
  sparq_gpt_config bad = c;
  bad.moe_topk = 4;
  assert_int_equal(sparq_gpt_config_check(&bad), SPARQ_ERR_ARG);
  bad = c, bad.moe_layers = 4;
  assert_int_equal(sparq_gpt_config_check(&bad), SPARQ_ERR_ARG);
  bad = c, bad.num_classes = 3;
  assert_int_equal(sparq_gpt_config_check(&bad), SPARQ_ERR_ARG);
  sparq_gpt_free(g);
}

static void tokens(int32_t *x, int32_t *y, int n, uint64_t seed) {
  sparq_rng rng = sparq_rng_make(seed, 3);
  for (int i = 0; i < n; i++) {
    x[i] = (int32_t)(sparq_rng_uniform(&rng) * 255.0f);
    y[i] = (int32_t)(sparq_rng_uniform(&rng) * 255.0f);
  }
}

/* J = CE + lambda mean_l reg_l, from a forward (counts come with it). */
static double objective(sparq_gpt *g, const int32_t *x, const int32_t *y, float lambda, int64_t *counts) {
  float ce = 0;
  assert_int_equal(sparq_gpt_forward(g, x, y, 2, 8, &ce), SPARQ_OK);
  double reg = 0;
  for (int64_t j = 0; j < sparq_gpt_moe_count(g); j++) {
    sparq_moe_stats s;
    assert_int_equal(sparq_gpt_moe_stats(g, j, NULL, &s), SPARQ_OK);
    reg += s.reg_lb;
    for (int e = 0; e < 3; e++) counts[j * 3 + e] = s.counts[e];
  }
  return ce + lambda * reg / (double)sparq_gpt_moe_count(g);
}

/* Gradients of the whole model's objective against central differences,
 * on the router and experts of the last block (trials whose perturbation
 * changes the routing are skipped: the counts are held fixed). */
static void test_gpt_gradients(void **state) {
  (void)state;
  sparq_gpt_config c = moe_config(SPARQ_MOE_RELU, 3);
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 5, &g), SPARQ_OK);
  sparq_param_list *pl = sparq_gpt_params(g);
  int32_t x[16], y[16];
  tokens(x, y, 16, 2);
  const float lambda = 1.0f;
  sparq_gpt_set_moe_objective(g, lambda, SPARQ_MOE_L1_LB, 0.0f);
  int64_t base[6], cp[6], cm[6];
  objective(g, x, y, lambda, base);
  sparq_params_zero_grad(pl);
  assert_int_equal(sparq_gpt_backward(g, 1.0f), SPARQ_OK);
  const char *names[] = {"transformer.h.1.mlp.router.weight", "transformer.h.1.mlp.experts.c_fc.weight",
                         "transformer.h.1.mlp.experts.c_proj.weight", "transformer.h.0.mlp.router.weight"};
  int checked = 0;
  for (int k = 0; k < 4; k++) {
    sparq_param *p = sparq_params_find(pl, names[k]);
    assert_non_null(p);
    for (int trial = 0; trial < 6; trial++) {
      const size_t i = ((size_t)trial * 7919u + (size_t)k * 31u) % p->numel;
      const float keep = p->data[i], h = k == 0 || k == 3 ? 1e-3f : 1e-2f;
      p->data[i] = keep + h;
      const double jp = objective(g, x, y, lambda, cp);
      p->data[i] = keep - h;
      const double jm = objective(g, x, y, lambda, cm);
      p->data[i] = keep;
      if (memcmp(cp, base, sizeof base) || memcmp(cm, base, sizeof base)) continue;
      const double fd = (jp - jm) / (2.0 * h);
      assert_true(fabs(p->grad[i] - fd) <= 3e-2 * fabs(fd) + 2e-4);
      checked++;
    }
  }
  assert_true(checked >= 12);
  sparq_gpt_free(g);
}

/* The inference pass gives the training forward's logits bit for bit. */
static void test_infer_matches_forward(void **state) {
  (void)state;
  for (int r = 1; r <= 2; r++) {
    sparq_gpt_config c = moe_config((sparq_moe_router)r, 3);
    sparq_gpt *g = NULL;
    assert_int_equal(sparq_gpt_create(&c, 9, &g), SPARQ_OK);
    int32_t x[16], y[16];
    tokens(x, y, 16, 4);
    assert_int_equal(sparq_gpt_forward(g, x, NULL, 2, 8, NULL), SPARQ_OK);
    float *logits = malloc(16 * 256 * sizeof(float));
    assert_int_equal(sparq_gpt_infer(g, x, NULL, NULL, 2, 8, logits), SPARQ_OK);
    assert_memory_equal(logits, sparq_gpt_logits(g), 16 * 256 * sizeof(float));
    free(logits);
    sparq_gpt_free(g);
  }
}

/* Runs steps of the MoE task by hand (micro-batch, AdamW, controller) and
 * records lambda after each. */
static void lambda_trace(int threads, float *trace, int steps) {
  sparq_set_threads(threads);
  static uint8_t text[6000];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (uint8_t)("the cat sat on the mat. "[i % 24] + (i % 97 == 0));
  sparq_gpt_config c = moe_config(SPARQ_MOE_RELU, 3);
  c.n_embd = 32, c.block_size = 16;
  sparq_gpt *g = NULL;
  assert_int_equal(sparq_gpt_create(&c, 3, &g), SPARQ_OK);
  sparq_lm_task task;
  assert_int_equal(sparq_lm_task_init(&task, g, text, 5000, text + 5000, 1000, 8, 16, 1, 1), SPARQ_OK);
  const sparq_lm_moe_config mc = {.l1 = SPARQ_MOE_L1_LB, .lambda0 = 1e-4f, .alpha = 1.2f};
  assert_int_equal(sparq_lm_task_set_moe(&task, &mc), SPARQ_OK);
  sparq_trainable m;
  sparq_lm_task_trainable(&task, &m);
  sparq_adamw_state adam;
  assert_int_equal(sparq_adamw_init(&adam, m.params), SPARQ_OK);
  sparq_adamw_config ac = sparq_adamw_config_default();
  sparq_rng rng = sparq_rng_make(7, 1);
  char buf[512];
  for (int s = 0; s < steps; s++) {
    sparq_params_zero_grad(m.params);
    float loss;
    assert_int_equal(m.train_micro(m.self, &rng, 1.0f, &loss), SPARQ_OK);
    assert_true(isfinite(loss));
    assert_int_equal(sparq_adamw_step(&adam, m.params, &ac, 1e-2f), SPARQ_OK);
    m.log_extra(m.self, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"sparsity\":"));
    assert_non_null(strstr(buf, "\"lambda\":"));
    trace[s] = sparq_lm_task_moe_lambda(&task);
  }
  sparq_adamw_free(&adam);
  sparq_lm_task_free(&task);
  sparq_gpt_free(g);
  sparq_set_threads(2);
}

static void test_lambda_trace_deterministic(void **state) {
  (void)state;
  enum { STEPS = 25 };
  float a[STEPS], b[STEPS], c1[STEPS];
  lambda_trace(2, a, STEPS);
  lambda_trace(2, b, STEPS);
  lambda_trace(1, c1, STEPS);
  assert_memory_equal(a, b, sizeof a);
  assert_memory_equal(a, c1, sizeof a);
  /* it moved (a trace of a frozen controller would pass trivially) */
  bool moved = false;
  for (int s = 1; s < STEPS; s++) moved |= a[s] != a[0];
  assert_true(moved);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_and_metadata),
      cmocka_unit_test(test_gpt_gradients),
      cmocka_unit_test(test_infer_matches_forward),
      cmocka_unit_test(test_lambda_trace_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
