/* Guidance-Free Training (Chen et al., "Visual Generation Without Guidance",
 * ICML 2025; spec gft.md): the pieces every GFT model shares, whatever the
 * network. One network eps_theta(x_t, t, c, beta) is the sampling model; the
 * conditional model it is trained through is implicit,
 *   eps_cond = beta eps_theta(x_t, t, c, beta) + (1 - beta) sg[eps_theta(x_t, t, null, 1)],
 * and its optimum is CFG at w = 1 / beta. "beta" here is always the GFT
 * temperature, never the DDPM noise schedule's beta_t. */
#ifndef SPARQ_GFT_H
#define SPARQ_GFT_H

#include <stdint.h>

#include "sparq/base.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The temperature of a CFG scale and back: beta = 1 / w (spec section 1).
 * w = 1 <-> beta = 1 (no guidance). No range check: see
 * sparq_gft_check_beta. */
float sparq_gft_w_to_beta(float w);
float sparq_gft_beta_to_w(float beta);

/* SPARQ_OK for beta in (0, 1]; otherwise SPARQ_ERR_ARG naming `who`. beta > 1
 * is CFG with w < 1, outside the training range (spec section 10). */
sparq_status sparq_gft_check_beta(float beta, const char *who);

/* One training draw per row (spec section 3 steps 2-3): beta[i] ~ U(0, 1)
 * from rng in row order, and the value the network is fed, beta_in[i] =
 * 1 for rows whose label is null_class (dropped labels), beta[i] otherwise.
 * The drawn beta[i] still weighs the combination of a dropped row. */
void sparq_gft_draw_beta(sparq_rng *rng, int64_t n, const int32_t *y, int32_t null_class, float *beta,
                         float *beta_in);

/* The implicit conditional prediction pred = beta out_s + (1 - beta) out_u,
 * all [n, dim] row-major, beta [n]. pred may alias out_s or out_u. */
void sparq_gft_combine(int64_t n, int64_t dim, const float *beta, const float *out_s, const float *out_u,
                       float *pred);

/* The diffusion training loss and its gradient (spec section 3 step 6):
 *   L = (1/n) sum_i weight[i] (1/dim) sum_j (pred_ij - target_ij)^2,
 * pred = sparq_gft_combine(beta, out_s, out_u), or pred = out_s when beta is
 * NULL (plain conditional regression, the CFG objective; out_u unused and
 * may be NULL). weight NULL means 1 per row. Accumulated in double in row
 * order. With dout_s non-NULL, writes dloss * dL/d out_s,
 *   dout_s_ij = dloss 2 weight[i] beta[i] (pred_ij - target_ij) / (n dim),
 * and nothing for out_u, which is detached (sg). dout_s may alias target
 * (each element is read before it is written), not out_s or out_u. Returns
 * L (before dloss). */
double sparq_gft_loss(int64_t n, int64_t dim, const float *beta, const float *out_s, const float *out_u,
                      const float *target, const float *weight, float dloss, float *dout_s);

#ifdef __cplusplus
}
#endif
#endif
