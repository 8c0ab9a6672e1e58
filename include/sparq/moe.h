/* Mixture-of-experts MLP layers: ReMoE's ReLU router (Wang, Zhu and Chen,
 * "ReMoE: Fully Differentiable Mixture-of-Experts with ReLU Routing", ICLR
 * 2025; spec shared/spec/remoe.md) and the TopK baseline, with sparse
 * dispatch, a hand-written backward, the L1 sparsity regulariser and the
 * adaptive lambda controller.
 *
 * One layer on N rows (tokens) of width C, E experts of hidden width H
 * (each nanoGPT's MLP: c_proj(gelu(c_fc(x))), exact-erf GELU):
 *   z[t]  = x[t] Wr^T                      router logits [N, E], Wr [E, C], no bias
 *   relu: R[t,e] = max(z[t,e], 0)          no softmax, no renormalisation
 *   topk: p[t] = softmax(z[t]); R[t,e] = p[t,e] for the k largest p[t,e]
 *         (ties to the lower index), 0 elsewhere; not renormalised
 *   y[t]  = sum over e with R[t,e] > 0 of R[t,e] FFN_e(x[t])
 * A row with no active expert gets y = 0 (only the residual passes).
 *
 * Dispatch: the rows routed to each expert are gathered (in row order) into
 * a dense block, the expert runs as two sparq_sgemm GEMMs on it, and the
 * results are scattered back, weighted by the gate, expert after expert.
 * Every row's sum runs over its experts in index order, so the result does
 * not depend on the thread count (beyond what sparq_sgemm guarantees).
 *
 * Expert weights are stacked, one tensor per kind for all experts
 * (Megatron's GroupedMLP keeps them so too):
 *   fc_w [E, H, C], fc_b [E, H], proj_w [E, C, H], proj_b [E, C]
 * (expert e's nn.Linear weights are fc_w[e], proj_w[e]; the biases may be
 * NULL for bias-free models).
 *
 * Per-layer losses of the last forward (spec sections 3 and 4; T = N):
 *   count_e   = #{t : R[t,e] > 0}
 *   f_e       = E / (k T) count_e        (a constant: no gradient flows into it)
 *   reg_lb    = (1/T) sum_t sum_e f_e R[t,e]     load-balanced L1
 *   reg_plain = (1/T) sum_t sum_e R[t,e]         plain L1
 *   aux       = E / (k T^2) sum_e (sum_t p[t,e]) count_e   (topk: Switch /
 *               Megatron's switch_load_balancing_loss_func without its
 *               coefficient; 1 for uniform p and balanced counts)
 *   sparsity  = 1 - nnz(R) / (T E)
 * How these combine over layers is the model's business (gpt.h). */
#ifndef SPARQ_MOE_H
#define SPARQ_MOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_moe_router {
  SPARQ_MOE_NONE = 0, /* a dense MLP */
  SPARQ_MOE_RELU = 1, /* ReMoE */
  SPARQ_MOE_TOPK = 2  /* softmax then top-k */
} sparq_moe_router;

typedef enum sparq_moe_l1 {
  SPARQ_MOE_L1_LB = 0,   /* load-balanced L1 (ReMoE's code) */
  SPARQ_MOE_L1_PLAIN = 1 /* plain L1 */
} sparq_moe_l1;

/* "relu" / "topk" / "none" and back; parse returns SPARQ_ERR_ARG on anything else. */
const char *sparq_moe_router_name(sparq_moe_router r);
sparq_status sparq_moe_router_parse(const char *s, sparq_moe_router *out);

/* The shape of one layer. */
typedef struct sparq_moe_dims {
  sparq_moe_router router; /* RELU or TOPK */
  int64_t C, H, E;         /* width, expert hidden width, experts (1..SPARQ_MOE_MAX_EXPERTS) */
  int64_t k;               /* target active experts per row, 1..E (topk: exactly k) */
} sparq_moe_dims;
#define SPARQ_MOE_MAX_EXPERTS 255

/* SPARQ_ERR_ARG naming the field when a size is out of range. */
sparq_status sparq_moe_dims_check(const sparq_moe_dims *d);

/* Borrowed weights (and, for backward, their gradients, accumulated +=;
 * NULL gradient pointers are skipped). */
typedef struct sparq_moe_weights {
  const float *router;                       /* [E, C] */
  const float *fc_w, *fc_b, *proj_w, *proj_b; /* stacked, see above; biases may be NULL */
} sparq_moe_weights;
typedef struct sparq_moe_grads {
  float *router, *fc_w, *fc_b, *proj_w, *proj_b;
} sparq_moe_grads;

/* What the last forward measured (owned by the state). */
typedef struct sparq_moe_stats {
  int64_t rows;          /* N */
  int64_t nnz;           /* nonzero gates */
  const int64_t *counts; /* [E] rows routed to each expert */
  const uint8_t *active; /* [N] active experts of each row */
  double reg_lb, reg_plain, aux, sparsity;
} sparq_moe_stats;

/* A layer's saved activations and scratch: routing lists, the gathered
 * inputs and the experts' hidden activations of every routed row. Buffers
 * grow with the number of routed rows (at most N E) and are reused. */
typedef struct sparq_moe_state sparq_moe_state;
sparq_status sparq_moe_state_create(sparq_moe_state **out);
void sparq_moe_state_free(sparq_moe_state *st);
/* The last forward's figures (valid until the next forward on st). */
void sparq_moe_state_stats(const sparq_moe_state *st, sparq_moe_stats *out);

/* y [N, C] = the layer's output for x [N, C] (overwritten; y must not alias
 * x). Saves what backward needs in st and measures the stats. */
sparq_status sparq_moe_forward(sparq_moe_state *st, const sparq_moe_dims *d, const sparq_moe_weights *w,
                               const float *x, float *y, int64_t N);

/* The backward of the last forward on st for the objective
 *   J = <dy, y> + reg_scale * reg + aux_scale * aux
 * with reg = reg_lb or reg_plain (l1) for the relu router (ignored for
 * topk) and aux for topk (ignored for relu): dx [N, C] is OVERWRITTEN
 * with dJ/dx; the weight gradients are accumulated. The counts inside f_e
 * and aux are held fixed. */
sparq_status sparq_moe_backward(sparq_moe_state *st, const sparq_moe_dims *d, const sparq_moe_weights *w,
                                const sparq_moe_grads *g, const float *x, const float *dy, float *dx,
                                sparq_moe_l1 l1, float reg_scale, float aux_scale);

/* The dense, unbatched reference of sparq_moe_forward: every expert runs on
 * every row in double precision and y = sum_e R[t,e] FFN_e(x[t]). gates
 * [N, E] (may be NULL) receives R. Slow; for tests. */
sparq_status sparq_moe_forward_ref(const sparq_moe_dims *d, const sparq_moe_weights *w, const float *x, float *y,
                                   float *gates, int64_t N);

/* The regulariser on a given gate matrix R [T, E] (any values >= 0):
 * reg_lb and reg_plain as above with k the target (the hand fixture of the
 * spec: R = [[1,0],[2,0],[0,3],[1,1]], k 1 gives counts [3, 2], reg_lb 2.5,
 * reg_plain 2.0, sparsity 0.375). counts [E] may be NULL. */
void sparq_moe_reg(const float *R, int64_t T, int64_t E, int64_t k, int64_t *counts, double *reg_lb,
                   double *reg_plain, double *sparsity);

/* ReMoE's adaptive lambda (spec section 4): after each optimizer step,
 *   lambda *= alpha when the step's sparsity S < target (= 1 - k/E),
 *   lambda /= alpha otherwise (also at S == target).
 * lambda is FP32 (the reference keeps it so) and is held inside
 * [FLT_MIN, FLT_MAX], so it never becomes 0, negative or non-finite. */
typedef struct sparq_moe_lambda {
  float lambda, alpha;
  double target;
} sparq_moe_lambda;
/* SPARQ_ERR_ARG unless lambda0 > 0 and finite, alpha > 1 and finite, 1 <= k <= E. */
sparq_status sparq_moe_lambda_init(sparq_moe_lambda *c, float lambda0, float alpha, int64_t E, int64_t k);
/* One step; returns the new lambda. A NaN sparsity counts as at or above target. */
float sparq_moe_lambda_update(sparq_moe_lambda *c, double sparsity);

#ifdef __cplusplus
}
#endif
#endif
