/* AdamW's per-step scalars and its one-element update, shared by the FP32
 * optimizer (adamw.c) and the FP8 one (adamw_fp8.c) so that both run the
 * same FP32 operations in the same order (spec coat-fp8.md 9.5: with an
 * identity codec the FP8 step equals sparq_adamw_step bit for bit). */
#ifndef SPARQ_TRAIN_ADAMW_INTERNAL_H
#define SPARQ_TRAIN_ADAMW_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/train.h"

/* The per-step float scalars of the update. */
typedef struct adamw_coef {
  float decay;     /* 1 - lr * wd */
  float lerp_w;    /* lerp coefficient: w or w - 1 */
  int lerp_small;  /* |w| < 0.5: base is m, else g */
  float beta2;     /* mul_(beta2) */
  float one_m_b2;  /* addcmul value 1 - beta2 */
  float bc2_sqrt;  /* (1 - beta2^t) ** 0.5 */
  float eps;
  float neg_step;  /* addcdiv value -lr / (1 - beta1^t) */
  bool use_decay;  /* wd != 0 */
} adamw_coef;

/* The scalars of step t (>= 1) as PyTorch computes them (adamw.c). */
adamw_coef adamw_coef_make(const sparq_adamw_config *cfg, float lr, int64_t t);

/* sparq_adamw_step's argument checks, with `fn` naming the caller. */
sparq_status adamw_check_hyper(const char *fn, const sparq_adamw_config *cfg, float lr);

/* adamw_one over n elements, the widest ISA's version (adamw.c): every
 * version runs adamw_one's roundings, so any of them gives the same bits. */
typedef void (*adamw_range_fn)(float *p, const float *g, float *m, float *v, size_t n, const adamw_coef *c,
                               int decay);
adamw_range_fn adamw_range_pick(void);

/* The moments' part of one element: m, v updated in place. */
static inline __attribute__((always_inline)) void adamw_moments_one(float gi, float *mi, float *vi,
                                                                    const adamw_coef *c) {
  float m = *mi, v = *vi;
  m = fmaf(c->lerp_w, gi - m, c->lerp_small ? m : gi);
  /* one product per statement: a compiler that contracts a * b + c within
   * an expression (clang's default -ffp-contract=on) must not fuse these */
  v = v * c->beta2;
  const float gg = (c->one_m_b2 * gi) * gi;
  v = v + gg;
  *mi = m, *vi = v;
}

/* One element; the scalar reference and the vector tails. */
static inline __attribute__((always_inline)) void adamw_one(float *p, const float *g, float *m, float *v, size_t i,
                                                            const adamw_coef *c, int decay) {
  float pi = p[i], mi = m[i], vi = v[i];
  if (decay) pi = pi * c->decay;
  adamw_moments_one(g[i], &mi, &vi, c);
  const float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
  pi = pi + (c->neg_step * mi) / denom;
  p[i] = pi, m[i] = mi, v[i] = vi;
}

#endif
