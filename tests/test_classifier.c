/* The evaluation classifier (sparq/classifier.h): names and shapes, every
 * parameter gradient of a tiny model against central finite differences of
 * a double-precision forward written here, training steps bit-identical at
 * 1 and 2 threads, the shuffled epochs of the training glue (and their
 * resume), save/load round trips, and the shipped weights: they load from
 * sparq_classifier_default_path() and classify the first 2000 test images
 * with >= 90 % accuracy (skipped when Fashion-MNIST is not installed). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sparq/classifier.h"
#include "sparq/data.h"
#include "sparq/gen_metrics.h"
#include "sparq/sparq.h"

static sparq_classifier_config tiny_config(void) {
  return (sparq_classifier_config){
      .image_size = 8, .conv1_channels = 2, .conv2_channels = 3, .hidden = 5, .num_classes = 4};
}

static float *random_images(int64_t n, int64_t side, uint64_t seed) {
  float *x = sparq_alloc((size_t)(n * side * side) * sizeof(float), "test images");
  sparq_rng rng = sparq_rng_make(seed, 1);
  sparq_rng_fill_uniform(&rng, x, (size_t)(n * side * side), -1.0f, 1.0f);
  return x;
}

static void names_and_shapes(void **state) {
  (void)state;
  sparq_classifier_config c = sparq_classifier_config_default();
  assert_int_equal(c.image_size, 28);
  sparq_classifier *m = NULL;
  assert_int_equal(sparq_classifier_create(&c, 1, &m), SPARQ_OK);
  const struct {
    const char *name;
    int ndim;
    int64_t shape[4];
  } want[] = {{"conv1.weight", 4, {32, 1, 3, 3}}, {"conv1.bias", 1, {32}},     {"conv2.weight", 4, {64, 32, 3, 3}},
              {"conv2.bias", 1, {64}},            {"fc1.weight", 2, {128, 3136}}, {"fc1.bias", 1, {128}},
              {"fc2.weight", 2, {10, 128}},       {"fc2.bias", 1, {10}}};
  sparq_param_list *pl = sparq_classifier_params(m);
  assert_int_equal(pl->count, 8);
  for (int i = 0; i < 8; i++) {
    const sparq_param *p = sparq_params_find(pl, want[i].name);
    assert_non_null(p);
    assert_int_equal(p->ndim, want[i].ndim);
    for (int d = 0; d < p->ndim; d++) assert_int_equal(p->shape[d], want[i].shape[d]);
    /* PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    const double fan_in = (double)(p->ndim == 1 ? (i == 1 ? 9 : i == 3 ? 288 : i == 5 ? 3136 : 128)
                                                 : (double)p->numel / (double)p->shape[0]);
    float lo = 1, hi = -1;
    for (size_t j = 0; j < p->numel; j++) lo = fminf(lo, p->data[j]), hi = fmaxf(hi, p->data[j]);
    assert_true(hi <= 1 / sqrt(fan_in) && lo >= -1 / sqrt(fan_in));
    assert_true(hi > 0.5 / sqrt(fan_in) && lo < -0.5 / sqrt(fan_in));
  }
  assert_int_equal(sparq_params_count(pl), 421642);
  sparq_classifier_free(m);
  c.image_size = 30;
  assert_int_equal(sparq_classifier_create(&c, 1, &m), SPARQ_ERR_ARG);
  assert_null(m);
}

/* ------------------------------------------------ the double reference */

typedef struct ref_model {
  sparq_classifier_config c;
  double *p[8]; /* conv1.w, conv1.b, conv2.w, conv2.b, fc1.w, fc1.b, fc2.w, fc2.b */
  size_t n[8];
  const float *x;
  const int32_t *y;
  int64_t N;
} ref_model;

/* out [N,OC,S,S] = conv3x3 pad 1 of in [N,C,S,S], then ReLU. */
static void ref_conv_relu(double *out, const double *in, const double *w, const double *b, int64_t N, int64_t C,
                          int64_t OC, int64_t S) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++)
      for (int64_t y = 0; y < S; y++)
        for (int64_t x = 0; x < S; x++) {
          double s = b[o];
          for (int64_t c = 0; c < C; c++)
            for (int64_t ky = 0; ky < 3; ky++)
              for (int64_t kx = 0; kx < 3; kx++) {
                const int64_t iy = y + ky - 1, ix = x + kx - 1;
                if (iy >= 0 && iy < S && ix >= 0 && ix < S)
                  s += w[((o * C + c) * 3 + ky) * 3 + kx] * in[((n * C + c) * S + iy) * S + ix];
              }
          out[((n * OC + o) * S + y) * S + x] = s > 0 ? s : 0;
        }
}

static void ref_pool(double *out, const double *in, int64_t planes, int64_t S) {
  for (int64_t p = 0; p < planes; p++)
    for (int64_t y = 0; y < S / 2; y++)
      for (int64_t x = 0; x < S / 2; x++) {
        const double *q = in + p * S * S;
        double m = fmax(fmax(q[2 * y * S + 2 * x], q[2 * y * S + 2 * x + 1]),
                        fmax(q[(2 * y + 1) * S + 2 * x], q[(2 * y + 1) * S + 2 * x + 1]));
        out[(p * (S / 2) + y) * (S / 2) + x] = m;
      }
}

static double ref_loss(const ref_model *r) {
  const sparq_classifier_config *c = &r->c;
  const int64_t N = r->N, S = c->image_size, C1 = c->conv1_channels, C2 = c->conv2_channels, F = c->hidden;
  const int64_t K = c->num_classes, flat = C2 * (S / 4) * (S / 4);
  double *x = calloc((size_t)(N * S * S), 8), *a1 = calloc((size_t)(N * C1 * S * S), 8);
  double *p1 = calloc((size_t)(N * C1 * S * S / 4), 8), *a2 = calloc((size_t)(N * C2 * S * S / 4), 8);
  double *p2 = calloc((size_t)(N * flat), 8), *h = calloc((size_t)(N * F), 8);
  for (int64_t i = 0; i < N * S * S; i++) x[i] = r->x[i];
  ref_conv_relu(a1, x, r->p[0], r->p[1], N, 1, C1, S);
  ref_pool(p1, a1, N * C1, S);
  ref_conv_relu(a2, p1, r->p[2], r->p[3], N, C1, C2, S / 2);
  ref_pool(p2, a2, N * C2, S / 2);
  double loss = 0;
  for (int64_t n = 0; n < N; n++) {
    for (int64_t j = 0; j < F; j++) {
      double s = r->p[5][j];
      for (int64_t i = 0; i < flat; i++) s += r->p[4][j * flat + i] * p2[n * flat + i];
      h[n * F + j] = s > 0 ? s : 0;
    }
    double logits[16], mx = -INFINITY, se = 0;
    for (int64_t k = 0; k < K; k++) {
      double s = r->p[7][k];
      for (int64_t j = 0; j < F; j++) s += r->p[6][k * F + j] * h[n * F + j];
      logits[k] = s;
      mx = fmax(mx, s);
    }
    for (int64_t k = 0; k < K; k++) se += exp(logits[k] - mx);
    loss += mx + log(se) - logits[r->y[n]];
  }
  free(x), free(a1), free(p1), free(a2), free(p2), free(h);
  return loss / (double)N;
}

static void gradients_match_double_reference(void **state) {
  (void)state;
  const sparq_classifier_config c = tiny_config();
  sparq_classifier *m = NULL;
  assert_int_equal(sparq_classifier_create(&c, 7, &m), SPARQ_OK);
  const int64_t N = 3;
  float *x = random_images(N, c.image_size, 3);
  const int32_t y[3] = {2, 0, 3};
  sparq_param_list *pl = sparq_classifier_params(m);
  /* larger weights than the default init, so ReLUs and pooling switch */
  for (size_t i = 0; i < pl->count; i++)
    for (size_t j = 0; j < pl->items[i].numel; j++) pl->items[i].data[j] *= 2.0f;
  sparq_params_zero_grad(pl);
  float loss = 0;
  assert_int_equal(sparq_classifier_forward(m, x, y, N, &loss), SPARQ_OK);
  assert_int_equal(sparq_classifier_backward(m, 1.0f), SPARQ_OK);
  ref_model r = {.c = c, .x = x, .y = y, .N = N};
  for (int i = 0; i < 8; i++) {
    const sparq_param *p = &pl->items[i];
    r.n[i] = p->numel;
    r.p[i] = malloc(p->numel * sizeof(double));
    for (size_t j = 0; j < p->numel; j++) r.p[i][j] = p->data[j];
  }
  const double l64 = ref_loss(&r);
  assert_true(fabs(loss - l64) < 1e-5 * (1 + fabs(l64)));
  double scale = 0, worst = 0;
  double *fd[8];
  for (int i = 0; i < 8; i++) {
    fd[i] = malloc(r.n[i] * sizeof(double));
    for (size_t j = 0; j < r.n[i]; j++) {
      const double keep = r.p[i][j], h = 1e-6;
      r.p[i][j] = keep + h;
      const double lp = ref_loss(&r);
      r.p[i][j] = keep - h;
      const double lm = ref_loss(&r);
      r.p[i][j] = keep;
      fd[i][j] = (lp - lm) / (2 * h);
      scale = fmax(scale, fabs(fd[i][j]));
    }
  }
  assert_true(scale > 0);
  for (int i = 0; i < 8; i++)
    for (size_t j = 0; j < r.n[i]; j++) {
      const double e = fabs((double)pl->items[i].grad[j] - fd[i][j]) / scale;
      worst = fmax(worst, e);
      if (!(e <= 1e-4))
        fail_msg("d/d%s[%zu]: analytic %.9g, finite difference %.9g", pl->items[i].name, j,
                 (double)pl->items[i].grad[j], fd[i][j]);
    }
  /* the accumulate rule: a second backward with dloss 0.5 adds half */
  float *g1 = malloc(pl->numel * sizeof(float));
  memcpy(g1, pl->grad, pl->numel * sizeof(float));
  assert_int_equal(sparq_classifier_backward(m, 0.5f), SPARQ_OK);
  for (size_t j = 0; j < pl->numel; j++) assert_true(fabsf(pl->grad[j] - 1.5f * g1[j]) <= 1e-5f * (1 + fabsf(g1[j])));
  /* no labels: no backward */
  assert_int_equal(sparq_classifier_forward(m, x, NULL, N, NULL), SPARQ_OK);
  assert_int_equal(sparq_classifier_backward(m, 1.0f), SPARQ_ERR_ARG);
  const int32_t bad[3] = {0, 4, 1};
  assert_int_not_equal(sparq_classifier_forward(m, x, bad, N, &loss), SPARQ_OK);
  for (int i = 0; i < 8; i++) free(r.p[i]), free(fd[i]);
  free(g1);
  sparq_free(x);
  sparq_classifier_free(m);
}

/* ---------------------------------------------------------- determinism */

/* Three AdamW steps on random images at the default size, then the
 * features of a fresh batch. */
static void train_steps(float **params, float **feats, size_t *np) {
  const sparq_classifier_config c = sparq_classifier_config_default();
  sparq_classifier *m = NULL;
  assert_int_equal(sparq_classifier_create(&c, 5, &m), SPARQ_OK);
  sparq_param_list *pl = sparq_classifier_params(m);
  sparq_adamw_state st;
  sparq_adamw_config ac = sparq_adamw_config_default();
  assert_int_equal(sparq_adamw_init(&st, pl), SPARQ_OK);
  const int64_t B = 40;
  float *x = random_images(B, 28, 11);
  int32_t y[40];
  for (int i = 0; i < B; i++) y[i] = (i * 7) % 10;
  for (int s = 0; s < 3; s++) {
    float loss;
    sparq_params_zero_grad(pl);
    assert_int_equal(sparq_classifier_forward(m, x, y, B, &loss), SPARQ_OK);
    assert_int_equal(sparq_classifier_backward(m, 1.0f), SPARQ_OK);
    assert_int_equal(sparq_adamw_step(&st, pl, &ac, 1e-3f), SPARQ_OK);
  }
  *np = pl->numel;
  *params = malloc(pl->numel * sizeof(float));
  memcpy(*params, pl->data, pl->numel * sizeof(float));
  float *x2 = random_images(300, 28, 12);
  *feats = malloc(300 * (128 + 10) * sizeof(float));
  assert_int_equal(sparq_classifier_features(m, x2, 300, *feats, *feats + 300 * 128), SPARQ_OK);
  sparq_adamw_free(&st);
  sparq_free(x), sparq_free(x2);
  sparq_classifier_free(m);
}

static void threads_bit_identical(void **state) {
  (void)state;
  const int before = sparq_threads();
  float *p1, *p2, *f1, *f2;
  size_t n1, n2;
  sparq_set_threads(1);
  train_steps(&p1, &f1, &n1);
  sparq_set_threads(2);
  train_steps(&p2, &f2, &n2);
  sparq_set_threads(before);
  assert_int_equal(n1, n2);
  if (memcmp(p1, p2, n1 * sizeof(float))) fail_msg("weights after 3 steps differ between 1 and 2 threads");
  if (memcmp(f1, f2, 300 * 138 * sizeof(float))) fail_msg("features differ between 1 and 2 threads");
  /* features are the ReLU output; probabilities are distributions */
  for (int i = 0; i < 300 * 128; i++) assert_true(f1[i] >= 0.0f);
  for (int i = 0; i < 300; i++) {
    double s = 0;
    for (int k = 0; k < 10; k++) s += f1[300 * 128 + i * 10 + k];
    assert_true(fabs(s - 1) < 1e-5);
  }
  free(p1), free(p2), free(f1), free(f2);
}

/* ------------------------------------------------------------ the task */

static void epochs_shuffle_and_resume(void **state) {
  (void)state;
  const sparq_classifier_config c = tiny_config();
  sparq_classifier *m = NULL;
  assert_int_equal(sparq_classifier_create(&c, 1, &m), SPARQ_OK);
  enum { N = 10, B = 4 };
  float *x = random_images(N, 8, 2);
  int32_t y[N];
  for (int i = 0; i < N; i++) x[i * 64] = (float)i, y[i] = i % 4; /* pixel 0 names the sample */
  sparq_classifier_task t;
  assert_int_equal(sparq_classifier_task_init(&t, m, x, y, N, x, y, N, B), SPARQ_OK);
  sparq_trainable tr;
  sparq_classifier_task_trainable(&t, &tr);
  assert_true(tr.params == sparq_classifier_params(m));
  assert_int_equal(tr.tokens_per_micro, B);
  sparq_rng rng = sparq_rng_make(99, 1);
  int seen[20], third[B];
  for (int k = 0; k < 5; k++) {
    float loss;
    assert_int_equal(tr.train_micro(tr.self, &rng, 1.0f, &loss), SPARQ_OK);
    assert_true(isfinite(loss));
    for (int i = 0; i < B; i++) {
      seen[k * B + i] = (int)t.x[i * 64];
      assert_int_equal(t.y[i], seen[k * B + i] % 4);
      if (k == 2) third[i] = seen[k * B + i];
    }
  }
  assert_int_equal(rng.position, 5);
  /* each epoch is a permutation; the two differ */
  for (int e = 0; e < 2; e++) {
    int count[N] = {0};
    for (int i = 0; i < N; i++) count[seen[e * N + i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(count[i], 1);
  }
  assert_true(memcmp(seen, seen + N, sizeof(int) * N) != 0);
  /* a resumed stream (position 2) draws the same third batch */
  sparq_classifier_task t2;
  assert_int_equal(sparq_classifier_task_init(&t2, m, x, y, N, x, y, N, B), SPARQ_OK);
  sparq_trainable tr2;
  sparq_classifier_task_trainable(&t2, &tr2);
  sparq_rng again = sparq_rng_make(99, 1);
  again.position = 2;
  float loss;
  assert_int_equal(tr2.train_micro(tr2.self, &again, 1.0f, &loss), SPARQ_OK);
  for (int i = 0; i < B; i++) assert_int_equal((int)t2.x[i * 64], third[i]);
  /* eval: the whole held-out set, accuracy kept */
  assert_int_equal(tr.eval(tr.self, &loss), SPARQ_OK);
  assert_true(isfinite(loss) && t.last_eval_accuracy >= 0 && t.last_eval_accuracy <= 1);
  sparq_classifier_task_free(&t2);
  sparq_classifier_task_free(&t2); /* twice is fine */
  assert_int_equal(sparq_classifier_task_init(&t2, m, x, y, N, x, y, N, 0), SPARQ_ERR_ARG);
  sparq_classifier_task_free(&t);
  sparq_free(x);
  sparq_classifier_free(m);
}

/* ------------------------------------------------------ files and paths */

static void save_and_load(void **state) {
  (void)state;
  const sparq_classifier_config c = tiny_config();
  sparq_classifier *m = NULL, *back = NULL;
  assert_int_equal(sparq_classifier_create(&c, 3, &m), SPARQ_OK);
  char p32[512], p16[512], bad[512];
  snprintf(p32, sizeof p32, "%s/classifier_f32.safetensors", SPARQ_TEST_TMP);
  snprintf(p16, sizeof p16, "%s/classifier_f16.safetensors", SPARQ_TEST_TMP);
  snprintf(bad, sizeof bad, "%s/classifier_bad.safetensors", SPARQ_TEST_TMP);
  assert_int_equal(sparq_classifier_save(m, p32, SPARQ_F32), SPARQ_OK);
  assert_int_equal(sparq_classifier_load(p32, &back), SPARQ_OK);
  const sparq_param_list *a = sparq_classifier_params(m), *b = sparq_classifier_params(back);
  assert_memory_equal(sparq_classifier_get_config(back), &c, sizeof c);
  assert_int_equal(a->numel, b->numel);
  assert_memory_equal(a->data, b->data, a->numel * sizeof(float));
  sparq_classifier_free(back);
  assert_int_equal(sparq_classifier_save(m, p16, SPARQ_F16), SPARQ_OK);
  assert_int_equal(sparq_classifier_load(p16, &back), SPARQ_OK);
  b = sparq_classifier_params(back);
  for (size_t i = 0; i < a->numel; i++) assert_true(fabsf(a->data[i] - b->data[i]) <= 1e-3f * fabsf(a->data[i]) + 1e-7f);
  sparq_classifier_free(back);
  assert_int_equal(sparq_classifier_save(m, p16, SPARQ_BF16), SPARQ_ERR_ARG);
  /* a file that is not a classifier checkpoint */
  float one = 1;
  sparq_named_tensor t = {"w", {.data = &one, .dtype = SPARQ_F32, .ndim = 1, .shape = {1}}};
  sparq_metadata_entry meta = {"model", "gpt"};
  assert_int_equal(sparq_safetensors_write(bad, &t, 1, &meta, 1), SPARQ_OK);
  assert_int_equal(sparq_classifier_load(bad, &back), SPARQ_ERR_FORMAT);
  assert_null(back);
  sparq_classifier_free(m);
}

static void default_path_env(void **state) {
  (void)state;
  setenv(SPARQ_CLASSIFIER_ENV, "/nonexistent/weights.safetensors", 1);
  assert_string_equal(sparq_classifier_default_path(), "/nonexistent/weights.safetensors");
  sparq_classifier *m = NULL;
  assert_int_equal(sparq_classifier_load(sparq_classifier_default_path(), &m), SPARQ_ERR_NOT_FOUND);
  unsetenv(SPARQ_CLASSIFIER_ENV);
  assert_non_null(sparq_classifier_default_path()); /* the shipped file, from the source tree */
}

static void shipped_weights_accuracy(void **state) {
  (void)state;
  sparq_fashion_mnist test;
  sparq_status s = sparq_fashion_mnist_load(NULL, SPARQ_SPLIT_TEST, false, 2000, &test);
  if (s == SPARQ_ERR_NOT_FOUND) {
    printf("skipped: Fashion-MNIST is missing (install the Debian package dataset-fashion-mnist): %s\n",
           sparq_last_error());
    skip();
  }
  assert_int_equal(s, SPARQ_OK);
  const char *path = sparq_classifier_default_path();
  if (!path) fail_msg("%s", sparq_last_error());
  sparq_classifier *m = NULL;
  if (sparq_classifier_load(path, &m)) fail_msg("%s", sparq_last_error());
  const sparq_classifier_config *c = sparq_classifier_get_config(m);
  assert_int_equal(c->image_size, 28);
  assert_true(c->hidden >= 64 && c->hidden <= 128);
  double loss, acc;
  assert_int_equal(sparq_classifier_evaluate(m, test.images, test.labels, test.n, &loss, &acc), SPARQ_OK);
  printf("shipped classifier %s: first %lld test images, accuracy %.2f %%, loss %.4f\n", path, (long long)test.n,
         100 * acc, loss);
  assert_true(acc >= 0.90);
  /* the metrics path agrees with evaluate */
  float *probs = malloc((size_t)test.n * 10 * sizeof(float));
  assert_int_equal(sparq_classifier_features(m, test.images, test.n, NULL, probs), SPARQ_OK);
  double acc2;
  assert_int_equal(sparq_class_accuracy(probs, test.labels, test.n, 10, &acc2), SPARQ_OK);
  assert_true(fabs(acc - acc2) < 1e-12);
  free(probs);
  sparq_classifier_free(m);
  sparq_fashion_mnist_free(&test);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_and_shapes),
      cmocka_unit_test(gradients_match_double_reference),
      cmocka_unit_test(threads_bit_identical),
      cmocka_unit_test(epochs_shuffle_and_resume),
      cmocka_unit_test(save_and_load),
      cmocka_unit_test(default_path_env),
      cmocka_unit_test(shipped_weights_accuracy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
