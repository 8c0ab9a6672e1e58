/* SignGD with decoupled weight decay over the flat parameter buffer:
 *   p *= 1 - lr * wd   (decay parameters, wd != 0; the factor rounded once to float)
 *   p -= lr * sign(g)  (sign(0) = 0, so a zero gradient moves nothing; a NaN
 *                       gradient gives NaN, as torch.sign does)
 * Stateless and elementwise: the result does not depend on the thread count. */
#include <omp.h>

#include "sparq/train.h"
#include "train/param_spans.h"

/* Branch-free so it vectorizes (random gradient signs would mispredict a
 * branch on every other element); compiled once per ISA below, all with the
 * same exact operations, so the bits do not depend on the ISA. */
static inline __attribute__((always_inline)) float sign_of(float g) {
  const float s = (g > 0.0f ? 1.0f : 0.0f) - (g < 0.0f ? 1.0f : 0.0f); /* +-0 -> 0 */
  return g != g ? g : s;                                               /* NaN stays NaN */
}

static inline __attribute__((always_inline)) void signgd_body(float *p, const float *g, size_t n, float lr,
                                                              float decay, int apply_decay) {
  /* one pass; p * decay is rounded before the step (a separate statement,
   * so no compiler contracts it into an fma with lr * sign) */
  if (apply_decay)
    for (size_t i = 0; i < n; i++) {
      const float pd = p[i] * decay;
      p[i] = pd - lr * sign_of(g[i]);
    }
  else
    for (size_t i = 0; i < n; i++) p[i] = p[i] - lr * sign_of(g[i]);
}

static void signgd_range_generic(float *p, const float *g, size_t n, float lr, float decay, int apply_decay) {
  signgd_body(p, g, n, lr, decay, apply_decay);
}

#ifdef SPARQ_HAVE_X86_SIMD
__attribute__((target("avx512f"))) static void signgd_range_avx512(float *p, const float *g, size_t n, float lr,
                                                                   float decay, int apply_decay) {
  signgd_body(p, g, n, lr, decay, apply_decay);
}
__attribute__((target("avx2"))) static void signgd_range_avx2(float *p, const float *g, size_t n, float lr,
                                                              float decay, int apply_decay) {
  signgd_body(p, g, n, lr, decay, apply_decay);
}
#endif

typedef void (*signgd_range_fn)(float *, const float *, size_t, float, float, int);

static signgd_range_fn signgd_pick(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) return signgd_range_avx512;
  if (isa >= SPARQ_ISA_AVX2) return signgd_range_avx2;
#endif
  return signgd_range_generic;
}

void sparq_signgd_step(sparq_param_list *pl, float weight_decay, float lr) {
  if (!pl || !pl->data || !pl->grad) return;
  const float decay = (float)(1.0 - (double)lr * (double)weight_decay);
  const int use_decay = weight_decay != 0;
  const signgd_range_fn run = signgd_pick();
  const size_t total = pl->numel, count = pl->count;
  const sparq_param *items = pl->items;
  float *pd = pl->data;
  const float *gd = pl->grad;
#pragma omp parallel if (total >= PARAM_SPANS_PARALLEL_MIN)
  {
    sparq_thread_set_ftz();
    size_t lo, hi;
    param_spans_block(total, &lo, &hi);
    for (size_t k = 0, s0, s1; param_spans_next(items, count, lo, hi, &k, &s0, &s1);)
      run(pd + s0, gd + s0, s1 - s0, lr, decay, use_decay && items[k - 1].decay);
  }
}

void sparq_signgd_momentum(sparq_param_list *pl, float *momentum, float beta) {
  if (!pl || !pl->grad || !momentum) return;
  float *g = pl->grad;
  const float keep = beta, take = 1.0f - beta;
  const int64_t n = (int64_t)pl->numel;
#pragma omp parallel for schedule(static) if (n >= ((int64_t)1 << 16))
  for (int64_t i = 0; i < n; i++) {
    const float m = keep * momentum[i] + take * g[i];
    momentum[i] = m;
    g[i] = m;
  }
}
