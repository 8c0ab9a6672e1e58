/* The learning-rate schedule of nanoGPT's train.py (get_lr), in double:
 *
 *   it < warmup:        lr * (it + 1) / (warmup + 1)
 *   it > decay_iters:   min_lr
 *   otherwise:          ratio = (it - warmup) / (decay_iters - warmup)
 *                       min_lr + 0.5 (1 + cos(pi ratio)) (lr - min_lr)
 *
 * At it = decay_iters the cosine is exactly min_lr (cos(pi) = -1), so every
 * it >= decay_iters past the warm-up returns min_lr; that also covers
 * warmup >= decay_iters, where nanoGPT would divide by zero (or assert). A
 * negative it or warmup counts as 0. */
#include <math.h>

#include "sparq/train.h"

float sparq_lr_cosine(int64_t it, float lr, float min_lr, int64_t warmup, int64_t decay_iters) {
  if (it < 0) it = 0;
  if (warmup < 0) warmup = 0;
  if (it < warmup) return (float)((double)lr * ((double)it + 1.0) / ((double)warmup + 1.0));
  if (it >= decay_iters) return min_lr;
  const double ratio = (double)(it - warmup) / (double)(decay_iters - warmup);
  const double coeff = 0.5 * (1.0 + cos(M_PI * ratio));
  return (float)((double)min_lr + coeff * ((double)lr - (double)min_lr));
}
