/* The training arithmetic of train.h: AdamW against PyTorch's update
 * (a double-precision twin of torch.optim.AdamW's single-tensor code path,
 * and hard-coded numbers for a tiny case), bit-identity over thread counts
 * and ISAs, padding, SignGD, the cosine schedule and gradient clipping. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sparq/train.h"

/* ------------------------------------------------------------- helpers */

typedef struct spec {
  const char *name;
  int ndim;
  int64_t shape[4];
} spec;

static void list_make(sparq_param_list *pl, const spec *s, size_t n) {
  memset(pl, 0, sizeof *pl);
  for (size_t i = 0; i < n; i++) assert_int_equal(sparq_params_add(pl, s[i].name, s[i].ndim, s[i].shape), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(pl), SPARQ_OK);
}

/* A mix of shapes: 2-D and 3-D parameters (decay), 1-D ones (no decay),
 * sizes that are not multiples of 16 so every parameter has padding. */
static const spec mixed[] = {
    {"transformer.wte.weight", 2, {97, 131}},    {"transformer.h.0.ln_1.weight", 1, {131}},
    {"transformer.h.0.attn.c_attn.weight", 2, {393, 131}}, {"transformer.h.0.attn.c_attn.bias", 1, {393}},
    {"conv.weight", 3, {7, 5, 3}},               {"transformer.ln_f.bias", 1, {1}},
    {"big.weight", 2, {300, 301}},
};
#define MIXED_COUNT (sizeof mixed / sizeof mixed[0])

/* Deterministic values: parameters ~N(0, 1), gradients ~N(0, scale). */
static void fill_params(sparq_param_list *pl, uint64_t seed) {
  for (size_t i = 0; i < pl->count; i++) {
    sparq_rng rng = sparq_rng_make(seed, i);
    sparq_rng_fill_normal(&rng, pl->items[i].data, pl->items[i].numel, 0.0f, 1.0f);
  }
}
static void fill_grads(sparq_param_list *pl, uint64_t seed, int step, float scale) {
  for (size_t i = 0; i < pl->count; i++) {
    sparq_rng rng = sparq_rng_make(seed + 1000 + (uint64_t)step, i);
    sparq_rng_fill_normal(&rng, pl->items[i].grad, pl->items[i].numel, 0.0f, scale);
  }
}

static bool padding_is_zero(const sparq_param_list *pl, const float *buf) {
  size_t pos = 0;
  for (size_t i = 0; i < pl->count; i++) {
    for (; pos < pl->items[i].offset; pos++)
      if (buf[pos] != 0 || signbit(buf[pos])) return false;
    pos = pl->items[i].offset + pl->items[i].numel;
  }
  for (; pos < pl->numel; pos++)
    if (buf[pos] != 0 || signbit(buf[pos])) return false;
  return true;
}

static void expect_rel(double got, double want, double rel, double floor, const char *what, size_t i) {
  if (fabs(got - want) > rel * fmax(fabs(want), floor))
    fail_msg("%s[%zu]: got %.9g, want %.9g (rel err %.3g)", what, i, got, want, fabs(got - want) / fabs(want));
}

/* ------------------------------------------------------- AdamW reference */

/* torch.optim.adam._single_tensor_adam with decoupled_weight_decay (AdamW),
 * written out for one tensor in double:
 *   step_t += 1
 *   param.mul_(1 - lr * weight_decay)
 *   exp_avg.lerp_(grad, 1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
 *   bias_correction1 = 1 - beta1 ** step
 *   bias_correction2 = 1 - beta2 ** step
 *   step_size = lr / bias_correction1
 *   bias_correction2_sqrt = bias_correction2 ** 0.5
 *   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 * beta1 = 0.9, beta2 = 0.95, eps = 1e-8 as nanoGPT passes them (Python
 * floats, not the float32 0.9f), wd 0.1 on decay parameters, 0 on the rest
 * (nanoGPT's two parameter groups). */
typedef struct ref_adamw {
  double *p, *m, *v;
  size_t n;
} ref_adamw;

static void ref_step(ref_adamw *r, const float *g, int64_t t, double lr, double wd) {
  const double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  for (size_t i = 0; i < r->n; i++) {
    if (wd != 0) r->p[i] *= 1 - lr * wd;
    r->m[i] += (1 - beta1) * ((double)g[i] - r->m[i]);
    r->v[i] = r->v[i] * beta2 + (1 - beta2) * (double)g[i] * (double)g[i];
    const double bc1 = 1 - pow(beta1, (double)t), bc2 = 1 - pow(beta2, (double)t);
    const double step_size = lr / bc1;
    const double denom = sqrt(r->v[i]) / pow(bc2, 0.5) + eps;
    r->p[i] += -step_size * r->m[i] / denom;
  }
}

/* Six steps with a different lr each; gradients keep a fixed sign per
 * element (magnitude varies) so exp_avg never cancels to ~0 and a relative
 * tolerance is meaningful; one element's gradient stays exactly 0. */
static void adamw_matches_pytorch_update(void **state) {
  (void)state;
  static const spec s[] = {{"w", 2, {4, 6}}, {"b", 1, {6}}, {"w3", 3, {2, 3, 5}}, {"ln", 1, {7}}};
  sparq_param_list pl;
  list_make(&pl, s, 4);
  fill_params(&pl, 7);
  sparq_adamw_state st;
  assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
  assert_int_equal(st.numel, pl.numel);
  assert_int_equal(st.step, 0);
  const sparq_adamw_config cfg = sparq_adamw_config_default();
  assert_true(cfg.beta1 == 0.9f && cfg.beta2 == 0.95f && cfg.eps == 1e-8f && cfg.weight_decay == 0.1f);

  ref_adamw ref[4];
  for (size_t k = 0; k < 4; k++) {
    const sparq_param *p = &pl.items[k];
    ref[k].n = p->numel;
    ref[k].p = calloc(p->numel, sizeof(double));
    ref[k].m = calloc(p->numel, sizeof(double));
    ref[k].v = calloc(p->numel, sizeof(double));
    for (size_t i = 0; i < p->numel; i++) ref[k].p[i] = p->data[i];
  }
  static const double lrs[] = {1e-3, 3e-3, 2e-3, 5e-4, 1e-2, 7e-3, 4e-3};
  for (int t = 1; t <= 7; t++) {
    for (size_t k = 0; k < 4; k++) {
      sparq_param *p = &pl.items[k];
      for (size_t i = 0; i < p->numel; i++) {
        const float sign = ((i * 7 + k) % 3) ? 1.0f : -1.0f;
        const float mag = 0.05f + 0.04f * (float)((i * 13 + (size_t)t * 5 + k) % 11);
        p->grad[i] = i == 3 ? 0.0f : sign * mag * (k == 3 ? 10.0f : 1.0f);
      }
    }
    assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, (float)lrs[t - 1]), SPARQ_OK);
    assert_int_equal(st.step, t);
    for (size_t k = 0; k < 4; k++) {
      const sparq_param *p = &pl.items[k];
      ref_step(&ref[k], p->grad, t, lrs[t - 1], p->decay ? 0.1 : 0.0);
      for (size_t i = 0; i < p->numel; i++) {
        /* parameters near 0 are judged against the size of the updates */
        expect_rel(p->data[i], ref[k].p[i], 1e-6, 1e-2, p->name, i);
        expect_rel(st.exp_avg[p->offset + i], ref[k].m[i], 1e-6, 1e-30, "exp_avg", i);
        expect_rel(st.exp_avg_sq[p->offset + i], ref[k].v[i], 1e-6, 1e-30, "exp_avg_sq", i);
      }
    }
  }
  /* the zero-gradient element only decays (decay params) or stays put */
  assert_true(pl.items[1].data[3] == (float)ref[1].p[3]);
  assert_true(st.exp_avg[pl.items[0].offset + 3] == 0 && st.exp_avg_sq[pl.items[0].offset + 3] == 0);
  assert_true(padding_is_zero(&pl, pl.data) && padding_is_zero(&pl, st.exp_avg) && padding_is_zero(&pl, st.exp_avg_sq));
  for (size_t k = 0; k < 4; k++) free(ref[k].p), free(ref[k].m), free(ref[k].v);
  sparq_adamw_free(&st);
  sparq_adamw_free(&st); /* twice is fine */
  sparq_params_free(&pl);
}

/* A tiny case with numbers computed outside sparq, by /usr/bin/python3
 * (numpy 1.24, no torch):
 *   W [2, 2] = [0.5, -0.25, 1.0, 2.0] (decay), b [3] = [0.1, -0.3, 0.0] (no decay),
 *   betas (0.9, 0.95), eps 1e-8, wd 0.1, lr 1e-2, 5e-3, 2e-3 for steps 1..3,
 *   grads step 1: W [0.1, -0.2, 0.3, 0], b [1, -0.5, 0.25]
 *         step 2: W [-0.05, 0.4, 0.1, 0.2], b [0.5, 0.5, -1]
 *         step 3: W [0.2, 0.2, -0.3, 0], b [-0.25, 0, 2]
 *   (every input first rounded to float32).
 * want64 is the update in Python floats, what torch.optim.AdamW computes on
 * float64 tensors:
 *   if decay: p *= 1 - lr * wd
 *   m += (g - m) * (1 - b1);  v = v * b2 + (1 - b2) * g * g
 *   p += -(lr / (1 - b1 ** t)) * m / (math.sqrt(v) / (1 - b2 ** t) ** 0.5 + eps)
 * want32 emulates ATen's float32 CPU kernels op by op, every op rounded
 * exactly to float32 from fractions.Fraction (f32(x) = the nearest float32,
 * ties to even; sqrt picked by comparing squared midpoints):
 *   dec, w, b2f, omb2, bc2s, epsf, step = [np.float32(x) for x in
 *     (1 - lr * wd, 1 - b1, b2, 1 - b2, (1 - b2 ** t) ** 0.5, eps, -(lr / (1 - b1 ** t)))]
 *   if decay: p = f32(p * dec)
 *   m = f32(w * f32(g - m) + m)                        # lerp_: vec::fmadd
 *   v = f32(v * b2f);  v = f32(v + f32(f32(omb2 * g) * g))   # mul_, addcmul_
 *   den = f32(f32(sqrt(v) / bc2s) + epsf)
 *   p = f32(p + f32(f32(step * m) / den))              # addcdiv_ */
static void adamw_tiny_case_hard_coded(void **state) {
  (void)state;
  static const spec s[] = {{"W", 2, {2, 2}}, {"b", 1, {3}}};
  static const float W0[4] = {0.5f, -0.25f, 1.0f, 2.0f}, b0[3] = {0.1f, -0.3f, 0.0f};
  static const float gW[3][4] = {{0.1f, -0.2f, 0.3f, 0.0f}, {-0.05f, 0.4f, 0.1f, 0.2f}, {0.2f, 0.2f, -0.3f, 0.0f}};
  static const float gb[3][3] = {{1.0f, -0.5f, 0.25f}, {0.5f, 0.5f, -1.0f}, {-0.25f, 0.0f, 2.0f}};
  static const float lrs[3] = {1e-2f, 5e-3f, 2e-3f};
  static const double want64_W[4] = {0.48651833147906209, -0.24243741491754611, 0.9838121150960154,
                                     1.9917765909857572};
  static const double want64_b[3] = {0.084155508637824616, -0.29034559082863565, -0.007958575632064261};
  static const double want64_mW[4] = {0.0236000003516674, 0.039800000593066209, 0.0032999999076127953,
                                      0.018000000268220899};
  static const double want64_vb[3] = {0.060125000000000053, 0.023156250000000021, 0.2503203125000002};
  static const float want32_W[4] = {0x1.f231dcp-2f, -0x1.f08308p-3f, 0x1.f7b638p-1f, 0x1.fde512p+0f};
  static const float want32_b[3] = {0x1.58b372p-4f, -0x1.29505cp-2f, -0x1.04c962p-7f};
  static const float want32_mW[4] = {0x1.82a994p-6f, 0x1.460aa8p-5f, 0x1.b08996p-9f, 0x1.26e97ap-6f};
  static const float want32_mb[3] = {0x1.9db22ep-4f, 0x1.26e97ep-8f, 0x1.0ac084p-3f};
  static const float want32_vW[4] = {0x1.50dae4p-9f, 0x1.75b814p-7f, 0x1.281990p-7f, 0x1.f212d8p-10f};
  static const float want32_vb[3] = {0x1.ec8b42p-5f, 0x1.7b6458p-6f, 0x1.0053f8p-2f};

  const sparq_isa top = sparq_isa_active();
  for (int isa = SPARQ_ISA_SCALAR; isa <= (int)top; isa++) {
    sparq_set_isa_cap((sparq_isa)isa);
    sparq_param_list pl;
    list_make(&pl, s, 2);
    sparq_param *W = &pl.items[0], *b = &pl.items[1];
    assert_true(W->decay && !b->decay);
    memcpy(W->data, W0, sizeof W0);
    memcpy(b->data, b0, sizeof b0);
    sparq_adamw_state st;
    assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
    const sparq_adamw_config cfg = sparq_adamw_config_default();
    for (int t = 0; t < 3; t++) {
      memcpy(W->grad, gW[t], sizeof gW[t]);
      memcpy(b->grad, gb[t], sizeof gb[t]);
      assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, lrs[t]), SPARQ_OK);
    }
    const float *mW = st.exp_avg + W->offset, *mb = st.exp_avg + b->offset;
    const float *vW = st.exp_avg_sq + W->offset, *vb = st.exp_avg_sq + b->offset;
    for (size_t i = 0; i < 4; i++) {
      expect_rel(W->data[i], want64_W[i], 1e-6, 0, "W", i);
      expect_rel(mW[i], want64_mW[i], 1e-6, 0, "exp_avg W", i);
      if (W->data[i] != want32_W[i] || mW[i] != want32_mW[i] || vW[i] != want32_vW[i])
        fail_msg("%s: W[%zu] = %a, m %a, v %a; float32 emulation %a, %a, %a", sparq_isa_name((sparq_isa)isa), i,
                 (double)W->data[i], (double)mW[i], (double)vW[i], (double)want32_W[i], (double)want32_mW[i],
                 (double)want32_vW[i]);
    }
    for (size_t i = 0; i < 3; i++) {
      expect_rel(b->data[i], want64_b[i], 1e-6, 0, "b", i);
      expect_rel(vb[i], want64_vb[i], 1e-6, 0, "exp_avg_sq b", i);
      if (b->data[i] != want32_b[i] || mb[i] != want32_mb[i] || vb[i] != want32_vb[i])
        fail_msg("%s: b[%zu] = %a, m %a, v %a; float32 emulation %a, %a, %a", sparq_isa_name((sparq_isa)isa), i,
                 (double)b->data[i], (double)mb[i], (double)vb[i], (double)want32_b[i], (double)want32_mb[i],
                 (double)want32_vb[i]);
    }
    sparq_adamw_free(&st);
    sparq_params_free(&pl);
  }
  sparq_set_isa_cap(top);
}

/* Runs 3 AdamW steps on the mixed list; returns data | m | v concatenated. */
static float *adamw_run(int threads, sparq_isa isa) {
  const int saved = sparq_threads();
  const sparq_isa top = sparq_isa_active();
  sparq_set_threads(threads);
  sparq_set_isa_cap(isa);
  sparq_param_list pl;
  list_make(&pl, mixed, MIXED_COUNT);
  fill_params(&pl, 3);
  sparq_adamw_state st;
  assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  for (int t = 0; t < 3; t++) {
    fill_grads(&pl, 3, t, 0.01f);
    assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 6e-4f * (float)(t + 1)), SPARQ_OK);
  }
  assert_true(padding_is_zero(&pl, pl.data) && padding_is_zero(&pl, st.exp_avg) && padding_is_zero(&pl, st.exp_avg_sq));
  float *out = malloc(3 * pl.numel * sizeof(float));
  memcpy(out, pl.data, pl.numel * sizeof(float));
  memcpy(out + pl.numel, st.exp_avg, pl.numel * sizeof(float));
  memcpy(out + 2 * pl.numel, st.exp_avg_sq, pl.numel * sizeof(float));
  sparq_adamw_free(&st);
  sparq_params_free(&pl);
  sparq_set_isa_cap(top);
  sparq_set_threads(saved);
  return out;
}

static size_t mixed_numel(void) {
  sparq_param_list pl;
  list_make(&pl, mixed, MIXED_COUNT);
  size_t n = pl.numel;
  sparq_params_free(&pl);
  return n;
}

static void adamw_bits_do_not_depend_on_threads_or_isa(void **state) {
  (void)state;
  const size_t n = 3 * mixed_numel();
  const sparq_isa top = sparq_isa_active();
  float *one = adamw_run(1, top), *two = adamw_run(2, top), *three = adamw_run(3, top);
  assert_memory_equal(one, two, n * sizeof(float));
  assert_memory_equal(one, three, n * sizeof(float));
  for (int isa = SPARQ_ISA_SCALAR; isa < (int)top; isa++) {
    float *other = adamw_run(2, (sparq_isa)isa);
    assert_memory_equal(one, other, n * sizeof(float));
    free(other);
  }
  free(one), free(two), free(three);
}

/* Padding stays exactly +0 in data and both moments under weight decay,
 * even when a gradient buffer's padding were nonzero. */
static void adamw_padding_stays_zero(void **state) {
  (void)state;
  sparq_param_list pl;
  list_make(&pl, mixed, MIXED_COUNT);
  fill_params(&pl, 5);
  sparq_adamw_state st;
  assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  cfg.weight_decay = 0.5f;
  for (int t = 0; t < 4; t++) {
    fill_grads(&pl, 5, t, 1.0f);
    for (size_t i = 0; i + 1 < pl.count; i++) /* garbage in the gradient padding */
      for (size_t j = pl.items[i].offset + pl.items[i].numel; j < pl.items[i + 1].offset; j++) pl.grad[j] = 1e3f;
    assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 0.1f), SPARQ_OK);
  }
  assert_true(padding_is_zero(&pl, pl.data));
  assert_true(padding_is_zero(&pl, st.exp_avg));
  assert_true(padding_is_zero(&pl, st.exp_avg_sq));
  sparq_adamw_free(&st);
  sparq_params_free(&pl);
}

static void adamw_bad_arguments(void **state) {
  (void)state;
  sparq_param_list pl, other;
  list_make(&pl, mixed, 2);
  list_make(&other, mixed, 3);
  sparq_adamw_state st;
  assert_int_equal(sparq_adamw_init(NULL, &pl), SPARQ_ERR_ARG);
  sparq_param_list empty = {0};
  assert_int_equal(sparq_adamw_init(&st, &empty), SPARQ_ERR_ARG);
  assert_null(st.exp_avg);
  assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  assert_int_equal(sparq_adamw_step(&st, &other, &cfg, 1e-3f), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_adamw_step"));
  assert_int_equal(sparq_adamw_step(NULL, &pl, &cfg, 1e-3f), SPARQ_ERR_ARG);
  assert_int_equal(sparq_adamw_step(&st, &pl, NULL, 1e-3f), SPARQ_ERR_ARG);
  assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, -1e-3f), SPARQ_ERR_ARG);
  assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, NAN), SPARQ_ERR_ARG);
  cfg.beta1 = 1.0f;
  assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 1e-3f), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "betas"));
  cfg = sparq_adamw_config_default();
  cfg.eps = -1.0f;
  assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 1e-3f), SPARQ_ERR_ARG);
  cfg = sparq_adamw_config_default();
  cfg.weight_decay = INFINITY;
  assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 1e-3f), SPARQ_ERR_ARG);
  assert_int_equal(st.step, 0); /* failed steps do not count */
  sparq_adamw_free(&st);
  sparq_params_free(&pl);
  sparq_params_free(&other);
}

/* beta1 >= 0.5 takes lerp's other branch (end - (end - start) * (1 - w)):
 * beta1 = 0 makes exp_avg the gradient itself. */
static void adamw_beta1_zero_copies_the_gradient(void **state) {
  (void)state;
  sparq_param_list pl;
  list_make(&pl, mixed, 2);
  fill_params(&pl, 9);
  sparq_adamw_state st;
  assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  cfg.beta1 = 0.0f;
  for (int t = 0; t < 2; t++) {
    fill_grads(&pl, 9, t, 0.3f);
    assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 1e-3f), SPARQ_OK);
    for (size_t k = 0; k < pl.count; k++)
      assert_memory_equal(st.exp_avg + pl.items[k].offset, pl.items[k].grad, pl.items[k].numel * sizeof(float));
  }
  sparq_adamw_free(&st);
  sparq_params_free(&pl);
}

/* -------------------------------------------------------------- SignGD */

static void signgd_moves_by_exactly_lr(void **state) {
  (void)state;
  static const spec s[] = {{"w", 2, {3, 4}}, {"b", 1, {5}}};
  const float lr = 0.01f;
  for (int wdi = 0; wdi < 2; wdi++) {
    const float wd = wdi ? 0.1f : 0.0f;
    sparq_param_list pl;
    list_make(&pl, s, 2);
    for (size_t k = 0; k < 2; k++)
      for (size_t i = 0; i < pl.items[k].numel; i++) {
        pl.items[k].data[i] = (i % 4 == 0) ? 0.0f : 0.25f * (float)i - 1.0f;
        const int r = (int)(i % 4);
        pl.items[k].grad[i] = r == 0 ? 3.5f : r == 1 ? -1e-30f : r == 2 ? 0.0f : -0.0f;
      }
    sparq_param_list before;
    list_make(&before, s, 2);
    memcpy(before.data, pl.data, pl.numel * sizeof(float));
    sparq_signgd_step(&pl, wd, lr);
    for (size_t k = 0; k < 2; k++) {
      const sparq_param *p = &pl.items[k];
      const float decay = (wd != 0 && p->decay) ? (float)(1.0 - (double)lr * wd) : 1.0f;
      for (size_t i = 0; i < p->numel; i++) {
        const float p0 = before.items[k].data[i] * decay, g = p->grad[i];
        const float want = g > 0 ? p0 - lr : g < 0 ? p0 + lr : p0;
        if (p->data[i] != want) fail_msg("%s[%zu]: %a, want %a", p->name, i, (double)p->data[i], (double)want);
        /* entries at 0 move by exactly lr (or stay at 0 for a zero gradient) */
        if (before.items[k].data[i] == 0) assert_true(fabsf(p->data[i]) == (g != 0 ? lr : 0.0f));
      }
    }
    assert_true(padding_is_zero(&pl, pl.data));
    sparq_params_free(&before);
    sparq_params_free(&pl);
  }
  sparq_signgd_step(NULL, 0.1f, 0.01f); /* no effect, no crash */
}

static void signgd_threads(void **state) {
  (void)state;
  float *res[2];
  size_t n = 0;
  const int saved = sparq_threads();
  for (int t = 0; t < 2; t++) {
    sparq_set_threads(t + 1);
    sparq_param_list pl;
    list_make(&pl, mixed, MIXED_COUNT);
    fill_params(&pl, 21);
    for (int k = 0; k < 3; k++) {
      fill_grads(&pl, 21, k, 1.0f);
      sparq_signgd_step(&pl, 0.1f, 1e-3f);
    }
    n = pl.numel;
    res[t] = malloc(n * sizeof(float));
    memcpy(res[t], pl.data, n * sizeof(float));
    sparq_params_free(&pl);
  }
  sparq_set_threads(saved);
  assert_memory_equal(res[0], res[1], n * sizeof(float));
  free(res[0]), free(res[1]);
}

/* ------------------------------------------------------------ schedule */

/* nanoGPT's get_lr in double, straight from train.py. */
static double get_lr(int64_t it, double lr, double min_lr, int64_t warmup, int64_t decay) {
  if (it < warmup) return lr * (double)(it + 1) / (double)(warmup + 1);
  if (it > decay) return min_lr;
  const double ratio = (double)(it - warmup) / (double)(decay - warmup);
  return min_lr + 0.5 * (1.0 + cos(M_PI * ratio)) * (lr - min_lr);
}

/* A frozen parameter (a fixed buffer such as DiT's pos_embed) is left alone
 * by AdamW (no decay either), SignGD and clipping, even with a gradient. */
static void frozen_parameters_are_skipped(void **state) {
  (void)state;
  sparq_param_list pl;
  list_make(&pl, mixed, MIXED_COUNT);
  fill_params(&pl, 5);
  fill_grads(&pl, 6, 1, 1.0f);
  sparq_param *fz = sparq_params_find(&pl, "big.weight");
  assert_non_null(fz);
  fz->frozen = true;
  float *before = malloc(fz->numel * sizeof *before);
  assert_non_null(before);
  memcpy(before, fz->data, fz->numel * sizeof *before);
  sparq_adamw_state st;
  assert_int_equal(sparq_adamw_init(&st, &pl), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  assert_int_equal(sparq_adamw_step(&st, &pl, &cfg, 1e-2f), SPARQ_OK);
  sparq_signgd_step(&pl, 0.1f, 1e-2f);
  assert_memory_equal(before, fz->data, fz->numel * sizeof *before);
  for (size_t i = 0; i < fz->numel; i++) assert_true(st.exp_avg[fz->offset + i] == 0.0f);
  /* the other parameters did move */
  const sparq_param *wte = sparq_params_find(&pl, "transformer.wte.weight");
  assert_true(st.exp_avg[wte->offset] != 0.0f);
  sparq_adamw_free(&st);
  free(before);
  sparq_params_free(&pl);
}

static void ema_update_follows_dit(void **state) {
  (void)state;
  sparq_param_list pl;
  list_make(&pl, mixed, MIXED_COUNT);
  fill_params(&pl, 8);
  sparq_param *fz = sparq_params_find(&pl, "conv.weight");
  fz->frozen = true;
  float *ema = calloc(pl.numel, sizeof *ema), *prev = calloc(pl.numel, sizeof *prev);
  assert_non_null(ema);
  assert_non_null(prev);
  sparq_ema_update(ema, &pl, 0.0f); /* decay 0 copies */
  assert_memory_equal(ema, pl.data, pl.numel * sizeof *ema);
  fill_params(&pl, 9);
  memcpy(prev, ema, pl.numel * sizeof *ema);
  sparq_ema_update(ema, &pl, 0.75f);
  for (size_t k = 0; k < pl.count; k++) {
    const sparq_param *p = &pl.items[k];
    for (size_t i = p->offset; i < p->offset + p->numel; i++) {
      const float want = p->frozen ? pl.data[i] : 0.75f * prev[i] + 0.25f * pl.data[i];
      assert_true(ema[i] == want);
    }
  }
  free(ema), free(prev);
  sparq_params_free(&pl);
}

static void schedule_matches_nanogpt(void **state) {
  (void)state;
  const float lr = 6e-4f, min_lr = 6e-5f;
  const int64_t warmup = 100, decay = 1000;
  /* warm-up boundaries */
  assert_true(sparq_lr_cosine(0, lr, min_lr, warmup, decay) == (float)((double)lr / 101.0));
  assert_true(sparq_lr_cosine(99, lr, min_lr, warmup, decay) == (float)((double)lr * 100.0 / 101.0));
  assert_true(sparq_lr_cosine(100, lr, min_lr, warmup, decay) == lr); /* cosine starts at the peak */
  /* mid-cosine: halfway the lr is the mean of peak and floor */
  expect_rel(sparq_lr_cosine(550, lr, min_lr, warmup, decay), 0.5 * ((double)lr + (double)min_lr), 1e-7, 0, "mid", 550);
  /* end and past the end */
  assert_true(sparq_lr_cosine(1000, lr, min_lr, warmup, decay) == min_lr);
  assert_true(sparq_lr_cosine(1001, lr, min_lr, warmup, decay) == min_lr);
  assert_true(sparq_lr_cosine(1000000, lr, min_lr, warmup, decay) == min_lr);
  /* every step against the double formula, and monotone after the warm-up */
  float prev = INFINITY;
  for (int64_t it = 0; it <= 1100; it++) {
    const float got = sparq_lr_cosine(it, lr, min_lr, warmup, decay);
    const double want = get_lr(it, lr, min_lr, warmup, decay);
    if (got != (float)want) expect_rel(got, want, 2e-7, 0, "lr", (size_t)it);
    if (it >= warmup) {
      assert_true(got <= prev);
      prev = got;
    }
  }
}

static void schedule_degenerate_horizons(void **state) {
  (void)state;
  const float lr = 1e-3f, min_lr = 1e-4f;
  /* warmup == decay_iters: nanoGPT divides by zero at it == warmup */
  assert_true(sparq_lr_cosine(9, lr, min_lr, 10, 10) == (float)((double)lr * 10.0 / 11.0));
  assert_true(sparq_lr_cosine(10, lr, min_lr, 10, 10) == min_lr);
  assert_true(sparq_lr_cosine(11, lr, min_lr, 10, 10) == min_lr);
  /* warmup > decay_iters */
  assert_true(sparq_lr_cosine(15, lr, min_lr, 20, 10) == (float)((double)lr * 16.0 / 21.0));
  assert_true(sparq_lr_cosine(20, lr, min_lr, 20, 10) == min_lr);
  /* no warm-up */
  assert_true(sparq_lr_cosine(0, lr, min_lr, 0, 10) == lr);
  assert_true(sparq_lr_cosine(0, lr, min_lr, 0, 0) == min_lr);
  assert_true(sparq_lr_cosine(5, lr, min_lr, 0, 0) == min_lr);
  /* out-of-range counters are clamped, never NaN */
  assert_true(sparq_lr_cosine(-5, lr, min_lr, 10, 100) == (float)((double)lr / 11.0));
  assert_true(isfinite(sparq_lr_cosine(INT64_MAX, lr, min_lr, INT64_MAX, INT64_MAX)));
  assert_true(sparq_lr_cosine(3, lr, min_lr, -4, 10) == (float)get_lr(3, lr, min_lr, 0, 10));
}

/* ---------------------------------------------------------------- clip */

static double norm_ref(const sparq_param_list *pl) {
  long double acc = 0;
  for (size_t k = 0; k < pl->count; k++)
    for (size_t i = 0; i < pl->items[k].numel; i++) acc += (long double)pl->items[k].grad[i] * pl->items[k].grad[i];
  return (double)sqrtl(acc);
}

static void clip_norm_and_scaling(void **state) {
  (void)state;
  sparq_param_list pl;
  list_make(&pl, mixed, MIXED_COUNT);
  fill_grads(&pl, 31, 0, 0.01f);
  float *g0 = malloc(pl.numel * sizeof(float));
  memcpy(g0, pl.grad, pl.numel * sizeof(float));
  const double want = norm_ref(&pl);
  assert_true(want > 1.0);

  /* off (max_norm 0) and below the threshold: the norm, grads untouched */
  double n = sparq_grad_clip(&pl, 0.0f);
  expect_rel(n, want, 1e-12, 0, "norm", 0);
  assert_memory_equal(pl.grad, g0, pl.numel * sizeof(float));
  assert_true(sparq_grad_clip(&pl, (float)(want * 2)) == n);
  assert_memory_equal(pl.grad, g0, pl.numel * sizeof(float));

  /* above: every gradient times max_norm / (norm + 1e-6), then the norm is max_norm */
  const float max_norm = 0.5f;
  assert_true(sparq_grad_clip(&pl, max_norm) == n);
  const float coef = (float)(0.5 / (n + 1e-6));
  for (size_t k = 0; k < pl.count; k++)
    for (size_t i = 0; i < pl.items[k].numel; i++) {
      const size_t j = pl.items[k].offset + i;
      if (pl.grad[j] != g0[j] * coef) fail_msg("grad %zu: %a, want %a", j, (double)pl.grad[j], (double)(g0[j] * coef));
    }
  expect_rel(norm_ref(&pl), 0.5, 1e-5, 0, "clipped norm", 0);
  assert_true(padding_is_zero(&pl, pl.grad));

  /* a non-finite norm leaves the gradients alone */
  memcpy(pl.grad, g0, pl.numel * sizeof(float));
  pl.items[2].grad[17] = INFINITY;
  memcpy(g0, pl.grad, pl.numel * sizeof(float));
  assert_true(isinf(sparq_grad_clip(&pl, 1.0f)));
  assert_memory_equal(pl.grad, g0, pl.numel * sizeof(float));
  pl.items[2].grad[17] = NAN;
  memcpy(g0, pl.grad, pl.numel * sizeof(float));
  assert_true(isnan(sparq_grad_clip(&pl, 1.0f)));
  assert_memory_equal(pl.grad, g0, pl.numel * sizeof(float));
  /* finite squares that overflow float but not double are fine */
  memset(pl.grad, 0, pl.numel * sizeof(float));
  pl.items[0].grad[0] = 3e38f, pl.items[6].grad[5] = -3e38f;
  expect_rel(sparq_grad_clip(&pl, 0.0f), (double)3e38f * sqrt(2.0), 1e-15, 0, "huge norm", 0);

  assert_true(sparq_grad_clip(NULL, 1.0f) == 0.0);
  free(g0);
  sparq_params_free(&pl);
}

static void clip_does_not_depend_on_threads_or_isa(void **state) {
  (void)state;
  static const spec s[] = {{"a", 2, {1000, 513}}, {"b", 1, {77}}, {"c", 2, {8191, 3}}, {"d", 1, {8193}}};
  sparq_param_list pl;
  list_make(&pl, s, 4);
  const int saved = sparq_threads();
  const sparq_isa top = sparq_isa_active();
  double norms[8];
  int k = 0;
  for (int t = 1; t <= 3; t++) {
    sparq_set_threads(t);
    fill_grads(&pl, 41, 0, 1.0f);
    norms[k++] = sparq_grad_clip(&pl, 1.0f);
  }
  for (int isa = SPARQ_ISA_SCALAR; isa < (int)top; isa++) {
    sparq_set_isa_cap((sparq_isa)isa);
    fill_grads(&pl, 41, 0, 1.0f);
    norms[k++] = sparq_grad_clip(&pl, 1.0f);
  }
  sparq_set_isa_cap(top);
  sparq_set_threads(saved);
  for (int i = 1; i < k; i++) assert_memory_equal(&norms[i], &norms[0], sizeof(double));
  fill_grads(&pl, 41, 0, 1.0f);
  expect_rel(norms[0], norm_ref(&pl), 1e-12, 0, "norm", 0);
  sparq_params_free(&pl);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(adamw_matches_pytorch_update),
      cmocka_unit_test(frozen_parameters_are_skipped),
      cmocka_unit_test(ema_update_follows_dit),
      cmocka_unit_test(adamw_tiny_case_hard_coded),
      cmocka_unit_test(adamw_bits_do_not_depend_on_threads_or_isa),
      cmocka_unit_test(adamw_padding_stays_zero),
      cmocka_unit_test(adamw_bad_arguments),
      cmocka_unit_test(adamw_beta1_zero_copies_the_gradient),
      cmocka_unit_test(signgd_moves_by_exactly_lr),
      cmocka_unit_test(signgd_threads),
      cmocka_unit_test(schedule_matches_nanogpt),
      cmocka_unit_test(schedule_degenerate_horizons),
      cmocka_unit_test(clip_norm_and_scaling),
      cmocka_unit_test(clip_does_not_depend_on_threads_or_isa),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
