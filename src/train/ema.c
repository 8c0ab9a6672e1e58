/* Exponential moving average of the weights (DiT's update_ema), over the
 * parameter list's flat layout. */
#include <string.h>

#include "sparq/base.h"
#include "sparq/train.h"

void sparq_ema_update(float *ema, const sparq_param_list *pl, float decay) {
  const float keep = decay, take = 1.0f - decay;
  const float *restrict p = pl->data;
  const int64_t n = (int64_t)pl->numel;
  /* the padding is 0 in both buffers, so one flat loop keeps it 0 */
#pragma omp parallel if (n >= (1 << 16))
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) ema[i] = keep * ema[i] + take * p[i];
  }
  /* a fixed buffer is its own average; copying keeps it bit-exact */
  for (size_t k = 0; k < pl->count; k++) {
    const sparq_param *q = &pl->items[k];
    if (q->frozen) memcpy(ema + q->offset, pl->data + q->offset, q->numel * sizeof *ema);
  }
}
