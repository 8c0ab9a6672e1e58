/* The training loop: bit-exact resume (N + N steps = 2N steps straight,
 * same losses, same checkpoint bytes), the NaN stop, the log, determinism
 * across thread counts for a fixed thread count, and that training lowers
 * the loss. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "sparq/sparq.h"
#include "lm_run_util.h"
#include "test_file_util.h"

static sparq_train_config base_config(const char *dir) {
  sparq_train_config c = {.steps = 24, .warmup = 4, .accum = 2, .eval_every = 5, .ckpt_every = 7, .lr = 3e-3f,
                          .min_lr = 3e-4f, .clip = 1.0f, .optim = SPARQ_OPTIM_ADAMW,
                          .adamw = sparq_adamw_config_default(), .seed = 5, .out_dir = dir, .quiet = true};
  return c;
}

/* The "loss" values of the step records of a log, in order. */
static int read_losses(const char *path, double *out, int max) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    long long step;
    double loss;
    const char *p = strstr(line, "\"loss\":");
    if (sscanf(line, "{\"step\":%lld", &step) == 1 && p && sscanf(p, "\"loss\":%lf", &loss) == 1) {
      assert_int_equal(step, n + 1);
      if (n < max) out[n] = loss;
      n++;
    }
  }
  fclose(f);
  return n;
}

static void check_resume(sparq_optim optim, float momentum, float lr, float ema, const char *tag) {
  size_t n = 20000;
  uint8_t *text = lm_run_text(n);
  char straight[512], split[512], path_a[600], path_b[600];
  snprintf(straight, sizeof straight, "%s/train_loop/%s-straight", SPARQ_TEST_TMP, tag);
  snprintf(split, sizeof split, "%s/train_loop/%s-split", SPARQ_TEST_TMP, tag);

  lm_run r;
  lm_run_open(&r, 2, text, n);
  sparq_train_config c = base_config(straight);
  c.optim = optim, c.momentum = momentum, c.lr = lr, c.min_lr = lr / 10, c.ema = ema;
  sparq_train_result res;
  assert_int_equal(sparq_train_run(&c, &r.model, &res), SPARQ_OK);
  assert_int_equal(res.steps_done, 24);
  lm_run_close(&r);

  /* 10 steps, stop; a fresh process-like start resumes to 24. */
  lm_run_open(&r, 2, text, n);
  c = base_config(split);
  c.optim = optim, c.momentum = momentum, c.lr = lr, c.min_lr = lr / 10, c.ema = ema;
  c.stop_at = 10;
  assert_int_equal(sparq_train_run(&c, &r.model, &res), SPARQ_OK);
  assert_int_equal(res.steps_done, 10);
  lm_run_close(&r);
  lm_run_open(&r, 2, text, n);
  c = base_config(split);
  c.optim = optim, c.momentum = momentum, c.lr = lr, c.min_lr = lr / 10, c.ema = ema;
  c.resume = true;
  assert_int_equal(sparq_train_run(&c, &r.model, &res), SPARQ_OK);
  assert_int_equal(res.steps_done, 24);
  lm_run_close(&r);

  double la[64], lb[64];
  snprintf(path_a, sizeof path_a, "%s/log.jsonl", straight);
  snprintf(path_b, sizeof path_b, "%s/log.jsonl", split);
  int na = read_losses(path_a, la, 64), nb = read_losses(path_b, lb, 64);
  assert_int_equal(na, 24);
  assert_int_equal(nb, 24);
  for (int i = 0; i < 24; i++)
    if (la[i] != lb[i]) fail_msg("step %d: loss %.9g straight, %.9g resumed", i + 1, la[i], lb[i]);
  snprintf(path_a, sizeof path_a, "%s/ckpt.safetensors", straight);
  snprintf(path_b, sizeof path_b, "%s/ckpt.safetensors", split);
  size_t sa = 0, sb = 0;
  char *fa = test_slurp(path_a, &sa), *fb = test_slurp(path_b, &sb);
  assert_int_equal(sa, sb);
  assert_memory_equal(fa, fb, sa);
  free(fa), free(fb);
  if (ema > 0) {
    /* the averaged weights resume bit-exactly too, and differ from the weights */
    snprintf(path_a, sizeof path_a, "%s/ema.safetensors", straight);
    snprintf(path_b, sizeof path_b, "%s/ema.safetensors", split);
    fa = test_slurp(path_a, &sa), fb = test_slurp(path_b, &sb);
    assert_int_equal(sa, sb);
    assert_memory_equal(fa, fb, sa);
    free(fa), free(fb);
    sparq_safetensors *st = NULL;
    assert_int_equal(sparq_safetensors_open(path_a, &st), SPARQ_OK);
    const sparq_tensor *w = sparq_safetensors_find(st, "transformer.h.0.attn.c_attn.weight");
    assert_non_null(w);
    assert_null(sparq_safetensors_find(st, "ema.transformer.h.0.attn.c_attn.weight"));
    sparq_safetensors *ck = NULL;
    snprintf(path_b, sizeof path_b, "%s/ckpt.safetensors", straight);
    assert_int_equal(sparq_safetensors_open(path_b, &ck), SPARQ_OK);
    const sparq_tensor *e = sparq_safetensors_find(ck, "ema.transformer.h.0.attn.c_attn.weight");
    const sparq_tensor *raw = sparq_safetensors_find(ck, "transformer.h.0.attn.c_attn.weight");
    assert_non_null(e);
    assert_non_null(raw);
    const size_t bytes = (size_t)(w->shape[0] * w->shape[1]) * sizeof(float);
    assert_memory_equal(e->data, w->data, bytes);
    assert_memory_not_equal(e->data, raw->data, bytes);
    sparq_safetensors_close(ck);
    sparq_safetensors_close(st);
  }
  /* The model learned something: the last losses are well below ln 256. */
  assert_true(la[23] < 0.75 * log(256.0));
  free(text);
}

static void test_resume_is_bit_exact(void **state) {
  (void)state;
  check_resume(SPARQ_OPTIM_ADAMW, 0.0f, 3e-3f, 0.0f, "adamw");
}

/* The weights' EMA travels in the checkpoint and in ema.safetensors. */
static void test_resume_with_ema(void **state) {
  (void)state;
  check_resume(SPARQ_OPTIM_ADAMW, 0.0f, 3e-3f, 0.9f, "adamw-ema");
}

/* SignGD with Signum momentum: the momentum buffer travels in the checkpoint. */
static void test_resume_signgd_momentum(void **state) {
  (void)state;
  check_resume(SPARQ_OPTIM_SIGNGD, 0.9f, 4e-3f, 0.0f, "signum");
}

/* A model whose loss turns NaN at micro-batch `bad`. */
typedef struct nan_model {
  sparq_param_list pl;
  int calls, bad;
} nan_model;

static sparq_status nan_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  nan_model *m = self;
  (void)rng;
  m->calls++;
  for (size_t i = 0; i < m->pl.numel; i++) m->pl.grad[i] += dloss * 0.5f;
  *loss = m->calls == m->bad ? NAN : 1.0f;
  return SPARQ_OK;
}

static sparq_status nan_eval(void *self, float *loss) {
  (void)self;
  *loss = 1.0f;
  return SPARQ_OK;
}

static void extra_fields(void *self, char *buf, size_t size) {
  nan_model *m = self;
  snprintf(buf, size, ",\"calls\":%d", m->calls);
}

/* A model's own per-step fields join the step records. */
static void test_log_extra_fields(void **state) {
  (void)state;
  nan_model m = {.bad = -1};
  int64_t shape[2] = {4, 4};
  assert_int_equal(sparq_params_add(&m.pl, "w", 2, shape), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(&m.pl), SPARQ_OK);
  sparq_trainable t = {.self = &m, .params = &m.pl, .train_micro = nan_micro, .eval = nan_eval,
                       .log_extra = extra_fields};
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/train_loop/extra", SPARQ_TEST_TMP);
  sparq_train_config c = base_config(dir);
  c.steps = 3, c.accum = 2;
  assert_int_equal(sparq_train_run(&c, &t, NULL), SPARQ_OK);
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  size_t n = 0;
  char *log = test_slurp(path, &n);
  assert_non_null(strstr(log, "{\"step\":1,\"loss\":1.000000,"));
  assert_non_null(strstr(log, ",\"calls\":2}\n{\"step\":2,"));
  assert_non_null(strstr(log, ",\"calls\":6}\n"));
  free(log);
  sparq_params_free(&m.pl);
}

static void test_nan_stops_the_run(void **state) {
  (void)state;
  nan_model m = {.bad = 3};
  int64_t shape[2] = {4, 4};
  assert_int_equal(sparq_params_add(&m.pl, "w", 2, shape), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(&m.pl), SPARQ_OK);
  sparq_trainable t = {.self = &m, .params = &m.pl, .train_micro = nan_micro, .eval = nan_eval};
  char dir[512];
  snprintf(dir, sizeof dir, "%s/train_loop/nan", SPARQ_TEST_TMP);
  sparq_train_config c = base_config(dir);
  c.accum = 1;
  c.ckpt_every = 1;
  sparq_train_result res;
  assert_int_equal(sparq_train_run(&c, &t, &res), SPARQ_ERR_FORMAT);
  assert_non_null(strstr(sparq_last_error(), "step 3"));
  assert_int_equal(res.steps_done, 2);
  /* The checkpoint on disk is the one of step 2: the bad step left no trace. */
  char path[600];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  assert_string_equal(sparq_safetensors_metadata(st, "step"), "2");
  sparq_safetensors_close(st);
  sparq_params_free(&m.pl);
}

static void test_bad_config(void **state) {
  (void)state;
  lm_run r;
  uint8_t *text = lm_run_text(5000);
  lm_run_open(&r, 2, text, 5000);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/train_loop/bad", SPARQ_TEST_TMP);
  sparq_train_config c = base_config(dir);
  c.accum = 0;
  assert_int_equal(sparq_train_run(&c, &r.model, NULL), SPARQ_ERR_ARG);
  c = base_config(dir);
  c.stop_at = 99;
  assert_int_equal(sparq_train_run(&c, &r.model, NULL), SPARQ_ERR_ARG);
  c = base_config(dir);
  c.resume = true; /* nothing to resume from */
  assert_int_not_equal(sparq_train_run(&c, &r.model, NULL), SPARQ_OK);
  lm_run_close(&r);
  free(text);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_is_bit_exact),
      cmocka_unit_test(test_resume_with_ema),
      cmocka_unit_test(test_resume_signgd_momentum),
      cmocka_unit_test(test_log_extra_fields),
      cmocka_unit_test(test_nan_stops_the_run),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
