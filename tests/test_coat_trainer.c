/* The FP8 optimizers in the training loop: bit-exact resume through
 * sparq_train_run (a tiny GPT and a toy model, DRE and plain, with and
 * without the shadow), the step records and coat.jsonl, the memory ledger
 * in memory.json, and the checks on resume: another optimizer or other
 * formats, a missing, mis-typed, mis-shaped or corrupted FP8 state tensor
 * all fail cleanly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/sparq.h"
#include "lm_run_util.h"
#include "test_file_util.h"

/* --------------------------------------------------------- tiny GPT run */


static sparq_train_config base_config(const char *dir, sparq_optim optim) {
  sparq_train_config c = {.steps = 16, .warmup = 3, .accum = 2, .eval_every = 5, .ckpt_every = 4, .lr = 3e-3f,
                          .min_lr = 3e-4f, .clip = 1.0f, .optim = optim, .adamw = sparq_adamw_config_default(),
                          .seed = 5, .out_dir = dir, .quiet = true};
  return c;
}

static void files_equal(const char *a_dir, const char *b_dir, const char *file) {
  char pa[700], pb[700];
  snprintf(pa, sizeof pa, "%s/%s", a_dir, file);
  snprintf(pb, sizeof pb, "%s/%s", b_dir, file);
  size_t na = 0, nb = 0;
  char *fa = test_slurp(pa, &na), *fb = test_slurp(pb, &nb);
  assert_non_null(fa);
  assert_non_null(fb);
  if (na != nb || memcmp(fa, fb, na)) fail_msg("%s differs between %s and %s", file, a_dir, b_dir);
  free(fa), free(fb);
}

/* The step records without their timing fields. */
static void losses_equal(const char *a_dir, const char *b_dir, int steps) {
  char pa[700], pb[700];
  snprintf(pa, sizeof pa, "%s/log.jsonl", a_dir);
  snprintf(pb, sizeof pb, "%s/log.jsonl", b_dir);
  char *fa = test_slurp(pa, NULL), *fb = test_slurp(pb, NULL);
  assert_non_null(fa);
  assert_non_null(fb);
  int n = 0;
  for (const char *a = fa, *b = fb; (a = strstr(a, "\"loss\":")) && (b = strstr(b, "\"loss\":")); a++, b++, n++) {
    double la = strtod(a + 7, NULL), lb = strtod(b + 7, NULL);
    if (la != lb) fail_msg("step %d: loss %.9g straight, %.9g resumed", n + 1, la, lb);
    const char *va = strstr(a, "\"v_flush\":"), *vb = strstr(b, "\"v_flush\":");
    assert_non_null(va);
    assert_non_null(vb);
    assert_int_equal(strtol(va + 10, NULL, 10), strtol(vb + 10, NULL, 10));
  }
  assert_int_equal(n, steps);
  free(fa), free(fb);
}

static void check_gpt_resume(sparq_optim optim, sparq_fp8_format fm, sparq_fp8_format fv, bool shadow,
                             const char *tag) {
  const size_t n = 12000;
  uint8_t *text = lm_run_text(n);
  char straight[512], split[512];
  snprintf(straight, sizeof straight, "%s/coat_trainer/%s-straight", SPARQ_TEST_TMP, tag);
  snprintf(split, sizeof split, "%s/coat_trainer/%s-split", SPARQ_TEST_TMP, tag);
  lm_run r;
  lm_run_open(&r, 1, text, n);
  sparq_train_config c = base_config(straight, optim);
  c.fp8_m_format = fm, c.fp8_v_format = fv, c.fp8_shadow = shadow;
  sparq_train_result res;
  assert_int_equal(sparq_train_run(&c, &r.model, &res), SPARQ_OK);
  assert_int_equal(res.steps_done, 16);
  assert_int_equal(res.fp8.nan_params + res.fp8.nan_m + res.fp8.nan_v, 0);
  lm_run_close(&r);

  lm_run_open(&r, 1, text, n);
  c.out_dir = split, c.stop_at = 6; /* between checkpoints: the resume replays steps 5 and 6 */
  assert_int_equal(sparq_train_run(&c, &r.model, &res), SPARQ_OK);
  assert_int_equal(res.steps_done, 6);
  lm_run_close(&r);
  /* the run stopped at 6 but its last checkpoint is from step 6 (the end of an invocation) */
  lm_run_open(&r, 1, text, n);
  c.stop_at = 0, c.resume = true;
  assert_int_equal(sparq_train_run(&c, &r.model, &res), SPARQ_OK);
  assert_int_equal(res.steps_done, 16);
  lm_run_close(&r);

  losses_equal(straight, split, 16);
  files_equal(straight, split, "ckpt.safetensors"); /* weights, FP8 codes, scales, k, c, shadow */
  files_equal(straight, split, "coat.jsonl");

  /* COAT's state names and dtypes in the checkpoint */
  char path[700];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", straight);
  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  const sparq_tensor *w = sparq_safetensors_find(st, "transformer.h.0.attn.c_attn.weight");
  const sparq_tensor *codes = sparq_safetensors_find(st, "optimizer.exp_avg.transformer.h.0.attn.c_attn.weight");
  const sparq_tensor *codes_v = sparq_safetensors_find(st, "optimizer.exp_avg_sq.transformer.h.0.attn.c_attn.weight");
  const sparq_tensor *k = sparq_safetensors_find(st, "optimizer.expand_exp_avg_sq.transformer.h.0.attn.c_attn.weight");
  assert_non_null(w);
  assert_non_null(codes);
  assert_non_null(codes_v);
  assert_non_null(k);
  assert_int_equal(codes->dtype, sparq_fp8_dtype(fm));
  assert_int_equal(codes_v->dtype, sparq_fp8_dtype(fv));
  assert_int_equal(codes->ndim, w->ndim);
  assert_int_equal(codes->shape[0], w->shape[0]);
  assert_int_equal(codes->shape[1], w->shape[1]);
  assert_int_equal(k->dtype, SPARQ_F32);
  assert_int_equal(k->ndim, 1);
  assert_int_equal(k->shape[0], (w->shape[0] * w->shape[1] + 127) / 128);
  assert_non_null(sparq_safetensors_find(st, "optimizer.scale_exp_avg.transformer.wte.weight"));
  assert_non_null(sparq_safetensors_find(st, "optimizer.sqrtminmax_exp_avg.transformer.wte.weight"));
  assert_string_equal(sparq_safetensors_metadata(st, "optim"), sparq_optim_name(optim));
  assert_string_equal(sparq_safetensors_metadata(st, "fp8_m_format"), sparq_fp8_format_name(fm));
  assert_string_equal(sparq_safetensors_metadata(st, "fp8_v_format"), sparq_fp8_format_name(fv));
  assert_int_equal(sparq_safetensors_find(st, "fp8_shadow.exp_avg.transformer.wte.weight") != NULL, shadow);
  sparq_safetensors_close(st);

  /* coat.jsonl: one line per tensor at the last step, with the shadow's errors when on */
  snprintf(path, sizeof path, "%s/coat.jsonl", straight);
  char *log = test_slurp(path, NULL);
  assert_non_null(log);
  assert_non_null(strstr(log, "{\"step\":16,\"name\":\"transformer.wte.weight\",\"k_bin_width\":0.25,\"k_hist_m\":["));
  assert_non_null(strstr(log, "\"zero_frac_v\":"));
  assert_int_equal(strstr(log, "\"relmse_update\":") != NULL, shadow);
  /* with DRE no non-zero value quantises to 0 */
  for (const char *p = log; optim == SPARQ_OPTIM_ADAMW_FP8 && (p = strstr(p, "\"zero_frac_")); p++)
    if (p[14] != '0' || (p[15] != ',' && p[15] != '}')) fail_msg("DRE run: %.40s", p);
  free(log);
  free(text);
}

static void resume_gpt_dre(void **state) {
  (void)state;
  check_gpt_resume(SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E4M3, SPARQ_FP8_E4M3, false, "dre");
}

static void resume_gpt_nodre_e5m2_shadow(void **state) {
  (void)state;
  check_gpt_resume(SPARQ_OPTIM_ADAMW_FP8_NODRE, SPARQ_FP8_E5M2, SPARQ_FP8_E4M3, true, "nodre-shadow");
}

/* ----------------------------------------------------------- toy model */

/* Two parameters pulled towards random targets; reports a made-up
 * activation size that changes over the micro-batches. */
typedef struct toy {
  sparq_param_list pl;
  int calls;
} toy;

static sparq_status toy_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  toy *t = self;
  t->calls++;
  double sum = 0;
  for (size_t i = 0; i < t->pl.count; i++) {
    sparq_param *p = &t->pl.items[i];
    for (size_t j = 0; j < p->numel; j++) {
      const float target = sparq_rng_normal(rng) * (float)(j % 7 + 1);
      const float d = p->data[j] - target;
      p->grad[j] += dloss * d;
      sum += 0.5 * d * d;
    }
  }
  *loss = (float)(sum / 1000.0);
  return SPARQ_OK;
}

static sparq_status toy_eval(void *self, float *loss) {
  toy *t = self;
  double sum = 0;
  for (size_t j = 0; j < t->pl.numel; j++) sum += (double)t->pl.data[j] * t->pl.data[j];
  *loss = (float)(sum / 1000.0);
  return SPARQ_OK;
}

static size_t toy_activations(void *self) {
  toy *t = self;
  return 1000 + (size_t)(t->calls % 3) * 10; /* largest: 1020 */
}

static void toy_open(toy *t, sparq_trainable *m) {
  memset(t, 0, sizeof *t);
  const int64_t w[2] = {40, 50}, b[1] = {33};
  assert_int_equal(sparq_params_add(&t->pl, "w", 2, w), SPARQ_OK);
  assert_int_equal(sparq_params_add(&t->pl, "b", 1, b), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(&t->pl), SPARQ_OK);
  *m = (sparq_trainable){.self = t, .params = &t->pl, .train_micro = toy_micro, .eval = toy_eval,
                         .activation_bytes = toy_activations};
}

static void toy_dir(char *dir, size_t size, const char *tag) {
  snprintf(dir, size, "%s/coat_trainer/toy-%s", SPARQ_TEST_TMP, tag);
}

static size_t json_field(const char *json, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = strstr(json, k);
  if (!p) fail_msg("memory.json has no %s: %s", key, json);
  return (size_t)strtoull(p + strlen(k), NULL, 10);
}

static void memory_ledger_file(void **state) {
  (void)state;
  const sparq_optim optims[3] = {SPARQ_OPTIM_ADAMW, SPARQ_OPTIM_ADAMW_FP8, SPARQ_OPTIM_SIGNGD};
  for (int o = 0; o < 3; o++) {
    toy t;
    sparq_trainable m;
    toy_open(&t, &m);
    char dir[512], path[700];
    toy_dir(dir, sizeof dir, sparq_optim_name(optims[o]));
    sparq_train_config c = base_config(dir, optims[o]);
    c.steps = 4;
    sparq_train_result res;
    assert_int_equal(sparq_train_run(&c, &m, &res), SPARQ_OK);
    snprintf(path, sizeof path, "%s/memory.json", dir);
    size_t len = 0;
    char *json = test_slurp(path, &len);
    assert_non_null(json);
    assert_true(len > 0 && json[0] == '{' && json[len - 1] == '\n' && strchr(json, '\n') == json + len - 1);
    const size_t n = 2000 + 33;
    const size_t params = json_field(json, "params_bytes"), grads = json_field(json, "grads_bytes");
    const size_t opt = json_field(json, "optimizer_state_bytes"), act = json_field(json, "activation_bytes");
    const size_t total = json_field(json, "total_bytes"), peak = json_field(json, "peak_rss_bytes");
    const size_t rss0 = json_field(json, "rss_start_bytes");
    assert_int_equal(params, 4 * n);
    assert_int_equal(grads, 4 * n);
    const size_t want_opt = optims[o] == SPARQ_OPTIM_ADAMW ? 8 * n
                            : optims[o] == SPARQ_OPTIM_SIGNGD ? 0
                                                               : (2 * 2000 + 24 * 16) + (2 * 33 + 24);
    assert_int_equal(opt, want_opt);
    assert_int_equal(act, 1020);
    assert_int_equal(total, params + grads + opt + act);
    /* the kernel's high-water mark and statm's count can differ by a few
     * pages (per-thread RSS counters), so not peak >= rss0 exactly */
    assert_true(rss0 > 0 && peak >= rss0 - rss0 / 10);
    assert_int_equal(res.memory.total_bytes, total);
    assert_int_equal(res.peak_rss_bytes, peak);
    free(json);
    /* the step records carry the FP8 counters with an FP8 optimizer only */
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    char *log = test_slurp(path, NULL);
    assert_non_null(log);
    const bool fp8 = optims[o] == SPARQ_OPTIM_ADAMW_FP8;
    assert_int_equal(strstr(log, "\"grad_norm\":") != NULL, true);
    assert_int_equal(strstr(log, ",\"nan_params\":0,\"nan_m\":0,\"nan_v\":0,\"v_flush\":0") != NULL, fp8);
    free(log);
    sparq_params_free(&t.pl);
  }
}

/* A toy FP8 run stopped at step 3, for the resume checks. */
static void toy_stopped(const char *tag, char *dir, size_t size) {
  toy t;
  sparq_trainable m;
  toy_open(&t, &m);
  toy_dir(dir, size, tag);
  sparq_train_config c = base_config(dir, SPARQ_OPTIM_ADAMW_FP8);
  c.steps = 8, c.stop_at = 3;
  assert_int_equal(sparq_train_run(&c, &m, NULL), SPARQ_OK);
  sparq_params_free(&t.pl);
}

static sparq_status toy_resume(const char *dir, sparq_optim optim, sparq_fp8_format fm) {
  toy t;
  sparq_trainable m;
  toy_open(&t, &m);
  sparq_train_config c = base_config(dir, optim);
  c.steps = 8, c.resume = true, c.fp8_m_format = fm;
  const sparq_status s = sparq_train_run(&c, &m, NULL);
  sparq_params_free(&t.pl);
  return s;
}

static void resume_with_other_optimizer_fails(void **state) {
  (void)state;
  char dir[512];
  toy_stopped("mismatch", dir, sizeof dir);
  assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW, SPARQ_FP8_E4M3), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "optimizer 'adamw-fp8', this one 'adamw'"));
  assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8_NODRE, SPARQ_FP8_E4M3), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "optimizer"));
  assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E5M2), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "fp8_m_format = 'e4m3', this one 'e5m2'"));
  /* the other way round: an FP32 AdamW checkpoint */
  toy t;
  sparq_trainable m;
  toy_open(&t, &m);
  toy_dir(dir, sizeof dir, "mismatch-fp32");
  sparq_train_config c = base_config(dir, SPARQ_OPTIM_ADAMW);
  c.steps = 8, c.stop_at = 2;
  assert_int_equal(sparq_train_run(&c, &m, NULL), SPARQ_OK);
  sparq_params_free(&t.pl);
  assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E4M3), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "optimizer 'adamw', this one 'adamw-fp8'"));
  /* and the right one still resumes */
  toy_stopped("mismatch", dir, sizeof dir);
  assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E4M3), SPARQ_OK);
}

/* Rewrites DIR/ckpt.safetensors with tensor `name` replaced (NULL
 * replacement: dropped), keeping the metadata. */
static void rewrite_ckpt(const char *dir, const char *name, const sparq_tensor *replacement) {
  char path[700];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
  sparq_named_tensor *list = calloc(st->count, sizeof *list);
  size_t n = 0;
  for (size_t i = 0; i < st->count; i++) {
    if (!strcmp(st->names[i], name)) {
      if (!replacement) continue;
      list[n] = (sparq_named_tensor){st->names[i], *replacement};
    } else {
      list[n] = (sparq_named_tensor){st->names[i], st->tensors[i]};
    }
    n++;
  }
  sparq_metadata_entry *meta = calloc(st->metadata_count, sizeof *meta);
  for (size_t i = 0; i < st->metadata_count; i++) meta[i] = (sparq_metadata_entry){st->metadata_keys[i], st->metadata_values[i]};
  char tmp[720];
  snprintf(tmp, sizeof tmp, "%s.new", path);
  assert_int_equal(sparq_safetensors_write(tmp, list, n, meta, st->metadata_count), SPARQ_OK);
  sparq_safetensors_close(st);
  assert_int_equal(rename(tmp, path), 0);
  free(list);
  free(meta);
}

static void corrupted_fp8_state_fails(void **state) {
  (void)state;
  char dir[512];
  float side[17];
  uint8_t codes[2000];
  for (int i = 0; i < 17; i++) side[i] = 1.0f;
  memset(codes, 0x38, sizeof codes);
  struct {
    const char *name;
    sparq_tensor t;
    sparq_status want;
    const char *msg;
  } cases[] = {
      {"optimizer.scale_exp_avg.w", {side, SPARQ_F32, 1, {17}}, SPARQ_ERR_FORMAT, "shape [17], expected [16]"},
      {"optimizer.expand_exp_avg_sq.w", {side, SPARQ_F32, 2, {4, 4}}, SPARQ_ERR_FORMAT, "expected [16]"},
      {"optimizer.exp_avg.w", {codes, SPARQ_F8_E5M2, 2, {40, 50}}, SPARQ_ERR_FORMAT, "dtype F8_E5M2, expected F8_E4M3"},
      {"optimizer.exp_avg_sq.w", {codes, SPARQ_U8, 2, {40, 50}}, SPARQ_ERR_FORMAT, "expected F8_E4M3"},
      {"optimizer.exp_avg.w", {codes, SPARQ_F8_E4M3, 2, {50, 40}}, SPARQ_ERR_FORMAT, "shape [50, 40]"},
      {"optimizer.sqrtminmax_exp_avg.b", {side, SPARQ_F16, 1, {1}}, SPARQ_ERR_FORMAT, "dtype F16"},
      {"optimizer.sqrtminmax_exp_avg.w", {NULL, SPARQ_F32, 0, {0}}, SPARQ_ERR_NOT_FOUND, "no tensor named"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char tag[32];
    snprintf(tag, sizeof tag, "corrupt-%zu", i);
    toy_stopped(tag, dir, sizeof dir);
    rewrite_ckpt(dir, cases[i].name, cases[i].want == SPARQ_ERR_NOT_FOUND ? NULL : &cases[i].t);
    assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E4M3), cases[i].want);
    if (!strstr(sparq_last_error(), cases[i].msg) || !strstr(sparq_last_error(), cases[i].name))
      fail_msg("case %zu: '%s' lacks '%s'", i, sparq_last_error(), cases[i].msg);
  }
  /* well-formed but unusable side data: a NaN scale, a zero k */
  const float bad[2] = {NAN, 0.0f};
  const char *names[2] = {"optimizer.scale_exp_avg.w", "optimizer.expand_exp_avg_sq.w"};
  for (int j = 0; j < 2; j++) {
    for (int i = 0; i < 16; i++) side[i] = i == 3 ? bad[j] : 1.0f;
    toy_stopped("corrupt-values", dir, sizeof dir);
    sparq_tensor t = {side, SPARQ_F32, 1, {16}};
    rewrite_ckpt(dir, names[j], &t);
    assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E4M3), SPARQ_ERR_FORMAT);
    assert_non_null(strstr(sparq_last_error(), "group 3"));
  }
  /* any other bytes as codes are fine: every code decodes to a finite value */
  toy_stopped("corrupt-codes", dir, sizeof dir);
  for (size_t i = 0; i < sizeof codes; i++) {
    codes[i] = (uint8_t)(i * 37);
    if ((codes[i] & 0x7F) == 0x7F) codes[i] = 0x7E; /* not NaN, which would stop the run at its loss */
  }
  sparq_tensor t = {codes, SPARQ_F8_E4M3, 2, {40, 50}};
  rewrite_ckpt(dir, "optimizer.exp_avg.w", &t);
  assert_int_equal(toy_resume(dir, SPARQ_OPTIM_ADAMW_FP8, SPARQ_FP8_E4M3), SPARQ_OK);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(resume_gpt_dre),
      cmocka_unit_test(resume_gpt_nodre_e5m2_shadow),
      cmocka_unit_test(memory_ledger_file),
      cmocka_unit_test(resume_with_other_optimizer_fails),
      cmocka_unit_test(corrupted_fp8_state_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
