/* Head parameterisations: what a raw network output means, as x0. */
#include <math.h>

#include "diffusion/diff_internal.h"

/* VP state in sigma space is x~ = x_t / alpha, with alpha = 1 / sqrt(1 + s^2)
 * and sigma_vp = s alpha. Written against x~ directly:
 *   eps head: x0 = (x_t - sigma_vp eps) / alpha = x~ - s eps
 *   x0 head:  x0 = out
 *   v head:   x0 = alpha x_t - sigma_vp v = alpha^2 x~ - sigma_vp v
 * EDM: x0 = c_skip x~ + c_out F. */
double diff_head_to_x0(const sparq_diffusion *d, double out, double xs, double sigma) {
  if (d->kind == SPARQ_DIFF_EDM) {
    const double sd = d->sigma_data, r2 = sigma * sigma + sd * sd;
    return (sd * sd / r2) * xs + (sigma * sd / sqrt(r2)) * out;
  }
  switch (d->pred) {
  case SPARQ_PRED_X0: return out;
  case SPARQ_PRED_V: {
    const double a2 = 1.0 / (1.0 + sigma * sigma);
    return a2 * xs - sigma * sqrt(a2) * out;
  }
  default: return xs - sigma * out;
  }
}
