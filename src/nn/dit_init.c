/* DiT's initialize_weights, and the fixed 2-D sin-cos position table.
 *
 * Each parameter draws from its own Philox stream (its index in the list),
 * so the values depend on neither the thread count nor the other
 * parameters' sizes. */
#include <math.h>
#include <string.h>

#include "nn/dit_internal.h"
#include "sparq/base.h"

/* get_2d_sincos_pos_embed(D, grid): row t = i * grid + j (patch row i,
 * column j). np.meshgrid(grid_w, grid_h) puts the column index first, so
 * the first D/2 values embed j and the last D/2 embed i; each half is
 * [sin(pos w_k), cos(pos w_k)], k < D/4, w_k = 10000^(-k / (D/4)), in
 * double like numpy, then rounded to float. */
static void pos_embed_2d(float *out, int64_t grid, int64_t D) {
  const int64_t quarter = D / 4;
  for (int64_t i = 0; i < grid; i++)
    for (int64_t j = 0; j < grid; j++) {
      float *row = out + (i * grid + j) * D;
      for (int half = 0; half < 2; half++) {
        const double pos = (double)(half == 0 ? j : i);
        float *h = row + half * 2 * quarter;
        for (int64_t k = 0; k < quarter; k++) {
          const double omega = 1.0 / pow(10000.0, (double)k / (double)quarter);
          h[k] = (float)sin(pos * omega);
          h[quarter + k] = (float)cos(pos * omega);
        }
      }
    }
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* torch.nn.init.xavier_uniform_ on a [fan_out, fan_in] weight: U(-a, a),
 * a = sqrt(6 / (fan_in + fan_out)). */
static void xavier_uniform(sparq_rng *rng, sparq_param *p, int64_t fan_out, int64_t fan_in) {
  const float a = (float)sqrt(6.0 / (double)(fan_in + fan_out));
  sparq_rng_fill_uniform(rng, p->data, p->numel, -a, a);
}

void dit_init_params(sparq_dit *m, uint64_t seed) {
  for (size_t i = 0; i < m->params.count; i++) {
    sparq_param *p = &m->params.items[i];
    sparq_rng rng = sparq_rng_make(seed, (uint64_t)i);
    if (p == m->pos) {
      pos_embed_2d(p->data, m->grid, m->cfg.hidden_size);
    } else if (p == m->y_table || p == m->t0_w || p == m->t2_w || p == m->cond_w) {
      sparq_rng_fill_normal(&rng, p->data, p->numel, 0.0f, 0.02f);
    } else if (ends_with(p->name, "adaLN_modulation.1.weight") || p == m->f_lin_w || p->ndim == 1) {
      /* adaLN-Zero: modulation and output layers start at 0. Every bias is 0,
       * x_embedder.proj.bias included: GFT's initialize_weights zeroes it
       * (facebookresearch/DiT leaves that Conv2d bias at PyTorch's default) */
      memset(p->data, 0, p->numel * sizeof(float));
    } else if (p == m->x_w) {
      /* "Initialize patch_embed like nn.Linear": the [D, C*p*p] view */
      xavier_uniform(&rng, p, p->shape[0], (int64_t)p->numel / p->shape[0]);
    } else {
      xavier_uniform(&rng, p, p->shape[0], p->shape[1]); /* every other Linear weight */
    }
  }
}
