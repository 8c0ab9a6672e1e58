/* AdamW over the flat parameter buffer with torch.optim.AdamW's
 * single-tensor semantics (the path PyTorch takes on CPU), op for op:
 *
 *   param.mul_(1 - lr * wd)                          (decay parameters, wd != 0)
 *   exp_avg.lerp_(grad, 1 - beta1)
 *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *   bc1 = 1 - beta1 ** t;  bc2 = 1 - beta2 ** t      (Python floats)
 *   step_size = lr / bc1
 *   denom = (exp_avg_sq.sqrt() / bc2 ** 0.5).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)
 *
 * The scalars are computed in double, as Python does, and rounded to float
 * where ATen converts them (Scalar.to<float>()); each tensor op is one
 * rounded float operation in the order ATen's CPU kernels evaluate it:
 *   lerp (|w| < 0.5):   m = fma(w, g - m, m)         (lerp_vec: vec::fmadd)
 *   lerp (|w| >= 0.5):  m = fma(w - 1, g - m, g)
 *   addcmul:            v = v + ((1 - beta2) * g) * g
 *   addcdiv:            p = p + (-step_size * m) / denom
 * Every element is independent, so the result depends neither on the thread
 * count nor on the ISA (scalar, AVX2 and AVX-512 run the same roundings). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/train.h"
#include "train/adamw_internal.h"
#include "train/param_spans.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#endif

sparq_adamw_config sparq_adamw_config_default(void) {
  sparq_adamw_config c = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  return c;
}

void sparq_adamw_free(sparq_adamw_state *st) {
  if (!st) return;
  sparq_free(st->exp_avg);
  sparq_free(st->exp_avg_sq);
  memset(st, 0, sizeof *st);
}

sparq_status sparq_adamw_init(sparq_adamw_state *st, const sparq_param_list *pl) {
  if (!st) return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_init: state is NULL");
  memset(st, 0, sizeof *st);
  if (!pl || !pl->data || !pl->grad || pl->numel == 0)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_init: the parameter list is NULL or not allocated");
  st->exp_avg = sparq_calloc(pl->numel, sizeof(float), "AdamW exp_avg");
  st->exp_avg_sq = sparq_calloc(pl->numel, sizeof(float), "AdamW exp_avg_sq");
  if (!st->exp_avg || !st->exp_avg_sq) {
    sparq_adamw_free(st);
    return SPARQ_ERR_NOMEM;
  }
  st->numel = pl->numel;
  return SPARQ_OK;
}

static void adamw_range_scalar(float *p, const float *g, float *m, float *v, size_t n, const adamw_coef *c,
                               int decay) {
  for (size_t i = 0; i < n; i++) adamw_one(p, g, m, v, i, c, decay);
}

#ifdef SPARQ_HAVE_X86_SIMD
#define TARGET_AVX512 __attribute__((target("avx512f,fma")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))

TARGET_AVX512 static void adamw_range_avx512(float *p, const float *g, float *m, float *v, size_t n,
                                             const adamw_coef *c, int decay) {
  const __m512 dec = _mm512_set1_ps(c->decay), w = _mm512_set1_ps(c->lerp_w), b2 = _mm512_set1_ps(c->beta2);
  const __m512 omb2 = _mm512_set1_ps(c->one_m_b2), bc2 = _mm512_set1_ps(c->bc2_sqrt), eps = _mm512_set1_ps(c->eps);
  const __m512 step = _mm512_set1_ps(c->neg_step);
  const int small = c->lerp_small;
  size_t i = 0;
  for (; i < n; i += 16) {
    /* the tail runs the same vector ops under a mask */
    const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 pv = _mm512_maskz_loadu_ps(k, p + i), gv = _mm512_maskz_loadu_ps(k, g + i);
    __m512 mv = _mm512_maskz_loadu_ps(k, m + i), vv = _mm512_maskz_loadu_ps(k, v + i);
    if (decay) pv = _mm512_mul_ps(pv, dec);
    mv = _mm512_fmadd_ps(w, _mm512_sub_ps(gv, mv), small ? mv : gv);
    vv = _mm512_add_ps(_mm512_mul_ps(vv, b2), _mm512_mul_ps(_mm512_mul_ps(omb2, gv), gv));
    const __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vv), bc2), eps);
    pv = _mm512_add_ps(pv, _mm512_div_ps(_mm512_mul_ps(step, mv), den));
    _mm512_mask_storeu_ps(p + i, k, pv);
    _mm512_mask_storeu_ps(m + i, k, mv);
    _mm512_mask_storeu_ps(v + i, k, vv);
  }
}

TARGET_AVX2 static void adamw_range_avx2(float *p, const float *g, float *m, float *v, size_t n, const adamw_coef *c,
                                         int decay) {
  const __m256 dec = _mm256_set1_ps(c->decay), w = _mm256_set1_ps(c->lerp_w), b2 = _mm256_set1_ps(c->beta2);
  const __m256 omb2 = _mm256_set1_ps(c->one_m_b2), bc2 = _mm256_set1_ps(c->bc2_sqrt), eps = _mm256_set1_ps(c->eps);
  const __m256 step = _mm256_set1_ps(c->neg_step);
  const int small = c->lerp_small;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pv = _mm256_loadu_ps(p + i), gv = _mm256_loadu_ps(g + i);
    __m256 mv = _mm256_loadu_ps(m + i), vv = _mm256_loadu_ps(v + i);
    if (decay) pv = _mm256_mul_ps(pv, dec);
    mv = _mm256_fmadd_ps(w, _mm256_sub_ps(gv, mv), small ? mv : gv);
    vv = _mm256_add_ps(_mm256_mul_ps(vv, b2), _mm256_mul_ps(_mm256_mul_ps(omb2, gv), gv));
    const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2), eps);
    pv = _mm256_add_ps(pv, _mm256_div_ps(_mm256_mul_ps(step, mv), den));
    _mm256_storeu_ps(p + i, pv);
    _mm256_storeu_ps(m + i, mv);
    _mm256_storeu_ps(v + i, vv);
  }
  for (; i < n; i++) adamw_one(p, g, m, v, i, c, decay); /* fmaf is vfmadd here */
}
#endif

adamw_range_fn adamw_range_pick(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) return adamw_range_avx512;
  if (isa >= SPARQ_ISA_AVX2) return adamw_range_avx2;
#endif
  return adamw_range_scalar;
}

static sparq_status check_args(const sparq_adamw_state *st, const sparq_param_list *pl, const sparq_adamw_config *cfg,
                               float lr) {
  if (!st || !pl || !cfg) return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_step: NULL state, parameters or config");
  if (!pl->data || !pl->grad) return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_step: the parameter list is not allocated");
  if (!st->exp_avg || !st->exp_avg_sq || st->numel != pl->numel)
    return sparq_fail(SPARQ_ERR_ARG,
                      "sparq_adamw_step: the state holds %zu floats but the parameter list %zu (sparq_adamw_init)",
                      st->exp_avg && st->exp_avg_sq ? st->numel : (size_t)0, pl->numel);
  return adamw_check_hyper("sparq_adamw_step", cfg, lr);
}

/* The double a Python config holds for a hyperparameter given as a float:
 * the shortest decimal that rounds to it (0.9f -> 0.9, 0.95f -> 0.95), so
 * that 1 - beta1, 1 - lr * wd and beta2 ** t come out as the same doubles
 * PyTorch computes from betas=(0.9, 0.95). %.9g always round-trips a float. */
static double decimal_double(float f) {
  if (!isfinite(f) || f == 0) return (double)f;
  char buf[40];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
    double d = strtod(buf, NULL);
    if ((float)d == f) return d;
  }
  return (double)f;
}

adamw_coef adamw_coef_make(const sparq_adamw_config *cfg, float lr, int64_t t) {
  const double lr_d = decimal_double(lr), wd = decimal_double(cfg->weight_decay);
  const double beta1 = decimal_double(cfg->beta1), beta2 = decimal_double(cfg->beta2);
  const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
  const float w = (float)(1.0 - beta1);
  const bool small = fabsf(w) < 0.5f;
  adamw_coef c = {
      .decay = (float)(1.0 - lr_d * wd),
      .lerp_w = small ? w : w - 1.0f,
      .lerp_small = small,
      .beta2 = (float)beta2,
      .one_m_b2 = (float)(1.0 - beta2),
      .bc2_sqrt = (float)pow(bc2, 0.5),
      .eps = (float)decimal_double(cfg->eps),
      .neg_step = (float)(-(lr_d / bc1)),
      .use_decay = wd != 0,
  };
  return c;
}

sparq_status adamw_check_hyper(const char *fn, const sparq_adamw_config *cfg, float lr) {
  if (!(lr >= 0) || !isfinite(lr)) return sparq_fail(SPARQ_ERR_ARG, "%s: lr %g must be finite and >= 0", fn, lr);
  if (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1))
    return sparq_fail(SPARQ_ERR_ARG, "%s: betas %g, %g must be in [0, 1)", fn, cfg->beta1, cfg->beta2);
  if (!(cfg->eps >= 0) || !isfinite(cfg->eps))
    return sparq_fail(SPARQ_ERR_ARG, "%s: eps %g must be finite and >= 0", fn, cfg->eps);
  if (!(cfg->weight_decay >= 0) || !isfinite(cfg->weight_decay))
    return sparq_fail(SPARQ_ERR_ARG, "%s: weight decay %g must be finite and >= 0", fn, cfg->weight_decay);
  return SPARQ_OK;
}

sparq_status sparq_adamw_step(sparq_adamw_state *st, sparq_param_list *pl, const sparq_adamw_config *cfg, float lr) {
  sparq_status s = check_args(st, pl, cfg, lr);
  if (s) return s;
  const int64_t t = st->step + 1;
  const adamw_coef c = adamw_coef_make(cfg, lr, t);
  const bool use_decay = c.use_decay;
  const adamw_range_fn run = adamw_range_pick();
  const size_t total = pl->numel, count = pl->count;
  const sparq_param *items = pl->items;
  float *pd = pl->data, *m = st->exp_avg, *v = st->exp_avg_sq;
  const float *gd = pl->grad;

#pragma omp parallel if (total >= PARAM_SPANS_PARALLEL_MIN)
  {
    sparq_thread_set_ftz();
    size_t lo, hi;
    param_spans_block(total, &lo, &hi);
    for (size_t k = 0, s0, s1; param_spans_next(items, count, lo, hi, &k, &s0, &s1);)
      run(pd + s0, gd + s0, m + s0, v + s0, s1 - s0, &c, use_decay && items[k - 1].decay);
  }
  st->step = t;
  return SPARQ_OK;
}
