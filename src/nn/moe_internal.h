/* The MoE layer's private state, shared by its forward, backward and
 * routing files (moe.h). */
#ifndef SPARQ_NN_MOE_INTERNAL_H
#define SPARQ_NN_MOE_INTERNAL_H

#include "sparq/moe.h"

struct sparq_moe_state {
  /* N-sized buffers, for cap_n rows */
  int64_t cap_n, cap_active; /* N E and N */
  float *z, *gate, *prob, *dgate; /* [N, E]: logits, gates R, softmax (topk), backward scratch */
  int32_t *slot_of;               /* [N, E]: routed slot of (t, e), -1 when inactive */
  uint8_t *active;                /* [N] */
  int32_t *slot_row;              /* [N E]: row of each routed slot, expert-major, rows in order */
  /* slot-sized buffers (one slot per routed (row, expert) pair), for cap_slots slots */
  int64_t cap_slots, slot_c, slot_h;
  float *xg, *o, *dc;             /* [slots, C]: gathered inputs, expert outputs, backward scratch */
  float *h, *hg, *dh;             /* [slots, H]: c_fc output, after GELU, backward scratch */
  int64_t counts[SPARQ_MOE_MAX_EXPERTS + 1], offs[SPARQ_MOE_MAX_EXPERTS + 1];
  /* the last forward */
  sparq_moe_dims d;
  int64_t N, nnz;
  double reg_lb, reg_plain, aux, sparsity;
  bool has_forward;
};

/* Gates of rows [0, N) from the logits already in st->z; fills gate, prob
 * (topk), active, slot_of, counts, offs, slot_row, nnz and the losses. */
void moe_route(sparq_moe_state *st, const sparq_moe_dims *d, int64_t N);

#endif
