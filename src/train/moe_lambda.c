/* ReMoE's adaptive regularisation coefficient (moe.h, spec section 4). */
#include <float.h>
#include <inttypes.h>
#include <math.h>

#include "sparq/base.h"
#include "sparq/moe.h"

sparq_status sparq_moe_lambda_init(sparq_moe_lambda *c, float lambda0, float alpha, int64_t E, int64_t k) {
  if (!c) return sparq_fail(SPARQ_ERR_ARG, "sparq_moe_lambda_init: NULL controller");
  if (!(lambda0 > 0.0f) || !isfinite(lambda0))
    return sparq_fail(SPARQ_ERR_ARG, "MoE lambda0 %g must be positive and finite", lambda0);
  if (!(alpha > 1.0f) || !isfinite(alpha))
    return sparq_fail(SPARQ_ERR_ARG, "MoE alpha %g must be finite and above 1", alpha);
  if (E < 1 || k < 1 || k > E)
    return sparq_fail(SPARQ_ERR_ARG, "MoE lambda: top-k %" PRId64 " is outside 1..experts (%" PRId64 ")", k, E);
  *c = (sparq_moe_lambda){.lambda = lambda0, .alpha = alpha, .target = 1.0 - (double)k / (double)E};
  return SPARQ_OK;
}

float sparq_moe_lambda_update(sparq_moe_lambda *c, double sparsity) {
  float next = sparsity < c->target ? c->lambda * c->alpha : c->lambda / c->alpha;
  /* a run that drifts for thousands of steps must not reach 0 or inf, from
   * which it could never come back */
  if (!(next <= FLT_MAX)) next = FLT_MAX;
  if (!(next >= FLT_MIN)) next = FLT_MIN;
  c->lambda = next;
  return next;
}
