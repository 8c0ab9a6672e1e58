/* Images <-> patch tokens for the DiT: the two index maps and their
 * adjoints (the backward of a permutation is the inverse permutation,
 * accumulated).
 *
 *   patchify    img [B,C,H,W] -> [B,T,C*p*p], token order (c, pi, pj): the
 *               flattening of timm PatchEmbed's Conv2d weight [D, C, p, p],
 *               so the convolution is one linear layer over these rows;
 *   unpatchify  [B,T,p*p*C] -> img, token order (pi, pj, c): DiT's
 *               reshape (h, w, p, q, c) and einsum 'nhwpqc->nchpwq'.
 * T = (H/p)(W/p) tokens, t = gh * (W/p) + gw (PatchEmbed's flatten(2)).
 * Each sample is independent and every element is written by exactly one
 * iteration, so any thread count gives the same bits. */
#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/nn.h"

/* The walk shared by all four functions: for every (b, t, c, pi, pj), the
 * image offset and the token offset in the chosen order, and the action. */
typedef enum { TO_TOKENS, TO_IMAGE_ADD, TO_IMAGE, TO_TOKENS_ADD } patch_op;

static void patch_walk(patch_op op, bool conv_order, float *tok, float *img, int64_t B, int64_t C, int64_t H,
                       int64_t W, int64_t p) {
  if (B <= 0 || C <= 0 || p <= 0 || H < p || W < p) return;
  const int64_t gw_n = W / p, T = (H / p) * gw_n, K = C * p * p;
#pragma omp parallel if (B * C * H * W >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t t = 0; t < T; t++) {
        const int64_t gh = t / gw_n, gw = t % gw_n;
        float *row = tok + (b * T + t) * K;
        for (int64_t c = 0; c < C; c++)
          for (int64_t pi = 0; pi < p; pi++) {
            float *line = img + ((b * C + c) * H + gh * p + pi) * W + gw * p;
            for (int64_t pj = 0; pj < p; pj++) {
              const int64_t k = conv_order ? (c * p + pi) * p + pj : (pi * p + pj) * C + c;
              switch (op) {
                case TO_TOKENS: row[k] = line[pj]; break;
                case TO_TOKENS_ADD: row[k] += line[pj]; break;
                case TO_IMAGE: line[pj] = row[k]; break;
                case TO_IMAGE_ADD: line[pj] += row[k]; break;
              }
            }
          }
      }
    }
  }
}

/* The walks take non-const pointers for both sides; each op writes only
 * the side its name says. */
void sparq_nn_patchify_forward(float *out, const float *img, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) {
  patch_walk(TO_TOKENS, true, out, (float *)img, B, C, H, W, p);
}

void sparq_nn_patchify_backward(float *dimg, const float *dout, int64_t B, int64_t C, int64_t H, int64_t W,
                                int64_t p) {
  patch_walk(TO_IMAGE_ADD, true, (float *)dout, dimg, B, C, H, W, p);
}

void sparq_nn_unpatchify_forward(float *img, const float *inp, int64_t B, int64_t C, int64_t H, int64_t W,
                                 int64_t p) {
  patch_walk(TO_IMAGE, false, (float *)inp, img, B, C, H, W, p);
}

void sparq_nn_unpatchify_backward(float *dinp, const float *dimg, int64_t B, int64_t C, int64_t H, int64_t W,
                                  int64_t p) {
  patch_walk(TO_TOKENS_ADD, false, dinp, (float *)dimg, B, C, H, W, p);
}
