/* The MoE layer's forward and backward with sparse dispatch (moe.h):
 * router GEMM, routing, one gather of every routed row, two GEMMs per
 * expert on its block of rows, and a per-row gather-sum back over the
 * experts in index order (so no two threads ever add into one row). */
#include <inttypes.h>
#include <string.h>

#include "nn/moe_internal.h"
#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"
#include "sparq/nn.h"

sparq_status sparq_moe_state_create(sparq_moe_state **out) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_moe_state_create: NULL output");
  *out = sparq_calloc(1, sizeof **out, "MoE state");
  return *out ? SPARQ_OK : SPARQ_ERR_NOMEM;
}

static void free_n(sparq_moe_state *st) {
  sparq_free(st->z), sparq_free(st->gate), sparq_free(st->prob), sparq_free(st->dgate);
  sparq_free(st->slot_of), sparq_free(st->slot_row), sparq_free(st->active);
  st->z = st->gate = st->prob = st->dgate = NULL;
  st->slot_of = st->slot_row = NULL;
  st->active = NULL;
  st->cap_n = st->cap_active = 0;
}

static void free_slots(sparq_moe_state *st) {
  sparq_free(st->xg), sparq_free(st->o), sparq_free(st->dc);
  sparq_free(st->h), sparq_free(st->hg), sparq_free(st->dh);
  st->xg = st->o = st->dc = st->h = st->hg = st->dh = NULL;
  st->cap_slots = 0;
}

void sparq_moe_state_free(sparq_moe_state *st) {
  if (!st) return;
  free_n(st);
  free_slots(st);
  sparq_free(st);
}

void sparq_moe_state_stats(const sparq_moe_state *st, sparq_moe_stats *out) {
  memset(out, 0, sizeof *out);
  if (!st || !st->has_forward) return;
  *out = (sparq_moe_stats){.rows = st->N, .nnz = st->nnz, .counts = st->counts, .active = st->active,
                           .reg_lb = st->reg_lb, .reg_plain = st->reg_plain, .aux = st->aux,
                           .sparsity = st->sparsity};
}

/* Buffers keyed by N E (grow only; the shape fields change per call). */
static sparq_status reserve_n(sparq_moe_state *st, int64_t N, int64_t E) {
  if (N * E <= st->cap_n && N <= st->cap_active) return SPARQ_OK;
  free_n(st);
  const size_t ne = (size_t)(N * E);
  st->z = sparq_alloc(ne * sizeof(float), "MoE logits");
  st->gate = sparq_alloc(ne * sizeof(float), "MoE gates");
  st->prob = sparq_alloc(ne * sizeof(float), "MoE probabilities");
  st->dgate = sparq_alloc(ne * sizeof(float), "MoE gate gradients");
  st->slot_of = sparq_alloc(ne * sizeof(int32_t), "MoE routing");
  st->slot_row = sparq_alloc(ne * sizeof(int32_t), "MoE routing");
  st->active = sparq_alloc((size_t)N, "MoE routing");
  if (!st->z || !st->gate || !st->prob || !st->dgate || !st->slot_of || !st->slot_row || !st->active) {
    free_n(st);
    return SPARQ_ERR_NOMEM;
  }
  st->cap_n = N * E;
  st->cap_active = N;
  return SPARQ_OK;
}

/* Slot buffers for `slots` routed rows of widths C and H; grown by 1/4
 * beyond the need, so a slowly rising load does not reallocate every step. */
static sparq_status reserve_slots(sparq_moe_state *st, int64_t slots, int64_t C, int64_t H, int64_t max_slots) {
  if (slots <= st->cap_slots && C == st->slot_c && H == st->slot_h) return SPARQ_OK;
  int64_t want = slots + slots / 4;
  if (want > max_slots) want = max_slots;
  if (want < 1) want = 1;
  free_slots(st);
  const size_t s = (size_t)want;
  st->xg = sparq_alloc(s * (size_t)C * sizeof(float), "MoE expert inputs");
  st->o = sparq_alloc(s * (size_t)C * sizeof(float), "MoE expert outputs");
  st->dc = sparq_alloc(s * (size_t)C * sizeof(float), "MoE backward scratch");
  st->h = sparq_alloc(s * (size_t)H * sizeof(float), "MoE expert activations");
  st->hg = sparq_alloc(s * (size_t)H * sizeof(float), "MoE expert activations");
  st->dh = sparq_alloc(s * (size_t)H * sizeof(float), "MoE backward scratch");
  if (!st->xg || !st->o || !st->dc || !st->h || !st->hg || !st->dh) {
    free_slots(st);
    return SPARQ_ERR_NOMEM;
  }
  st->cap_slots = want;
  st->slot_c = C;
  st->slot_h = H;
  return SPARQ_OK;
}

static sparq_status check_args(const char *who, const sparq_moe_state *st, const sparq_moe_dims *d,
                               const sparq_moe_weights *w, const float *x, const void *out, int64_t N) {
  if (!st || !d || !w || !x || !out || !w->router || !w->fc_w || !w->proj_w)
    return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  sparq_status s = sparq_moe_dims_check(d);
  if (s) return s;
  if (N < 1 || N > INT32_MAX / d->E)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %" PRId64 " rows is outside 1..%" PRId64, who, N,
                      (int64_t)INT32_MAX / d->E);
  return SPARQ_OK;
}

/* Rows at least this wide make a parallel loop over rows worth its start-up. */
static bool par_rows(int64_t rows, int64_t width) { return rows * width >= NN_PAR_MIN; }

/* dst[t] = sum over the experts e routed to by token t, in expert order, of
 * weight[t, e] (1 when weight is NULL) times the slot row src[slot_of[t, e]]:
 * the combine of the forward (weighted by the gates) and the gather of dx in
 * the backward. Each thread owns whole rows, so no two write one row. */
static void sum_slots(const int32_t *slot_of, const float *weight, const float *src, int64_t N, int64_t E, int64_t C,
                      float *dst) {
#pragma omp parallel if (par_rows(N, C))
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; t++) {
      float *row = dst + t * C;
      memset(row, 0, (size_t)C * sizeof(float));
      for (int64_t e = 0; e < E; e++) {
        const int32_t i = slot_of[t * E + e];
        if (i < 0) continue;
        const float r = weight ? weight[t * E + e] : 1.0f;
        const float *srow = src + (int64_t)i * C;
        for (int64_t c = 0; c < C; c++) row[c] += r * srow[c];
      }
    }
  }
}

sparq_status sparq_moe_forward(sparq_moe_state *st, const sparq_moe_dims *d, const sparq_moe_weights *w,
                               const float *x, float *y, int64_t N) {
  static const char who[] = "sparq_moe_forward";
  sparq_status s = check_args(who, st, d, w, x, y, N);
  if (s) return s;
  const int64_t C = d->C, H = d->H, E = d->E;
  st->has_forward = false;
  if ((s = reserve_n(st, N, E))) return s;
  if ((s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, N, E, C, 1.0f, x, C, w->router, C, 0.0f, st->z, E))) return s;
  moe_route(st, d, N);
  const int64_t slots = st->nnz;
  if ((s = reserve_slots(st, slots, C, H, N * E))) return s;
  const int32_t *rows = st->slot_row;
  float *xg = st->xg;
#pragma omp parallel for schedule(static) if (par_rows(slots, C))
  for (int64_t i = 0; i < slots; i++) memcpy(xg + i * C, x + (int64_t)rows[i] * C, (size_t)C * sizeof(float));
  for (int64_t e = 0; e < E; e++) {
    const int64_t n = st->counts[e], o0 = st->offs[e];
    if (n == 0) continue;
    if ((s = sparq_nn_linear_forward(st->h + o0 * H, xg + o0 * C, w->fc_w + e * H * C, w->fc_b ? w->fc_b + e * H : NULL,
                                     n, C, H)))
      return s;
  }
  sparq_nn_gelu_forward(st->hg, st->h, (size_t)(slots * H));
  for (int64_t e = 0; e < E; e++) {
    const int64_t n = st->counts[e], o0 = st->offs[e];
    if (n == 0) continue;
    if ((s = sparq_nn_linear_forward(st->o + o0 * C, st->hg + o0 * H, w->proj_w + e * C * H,
                                     w->proj_b ? w->proj_b + e * C : NULL, n, H, C)))
      return s;
  }
  const float *gate = st->gate, *o = st->o;
  const int32_t *slot_of = st->slot_of;
  sum_slots(slot_of, gate, o, N, E, C, y);
  st->d = *d;
  st->N = N;
  st->has_forward = true;
  return SPARQ_OK;
}

/* dz[t] from the gate gradients dgate[t] (in place). relu: the gradient
 * passes where z > 0, plus the regulariser's reg_e; topk: through the
 * selection into the softmax, plus the aux loss on every probability. */
static void router_backward_rows(sparq_moe_state *st, const sparq_moe_dims *d, int64_t N, const double *reg_e,
                                 const double *aux_e) {
  const int64_t E = d->E;
  const bool topk = d->router == SPARQ_MOE_TOPK;
#pragma omp parallel if (N * E >= NN_PAR_MIN / 4)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; t++) {
      float *dz = st->dgate + t * E;
      const float *z = st->z + t * E, *gate = st->gate + t * E, *p = st->prob + t * E;
      if (!topk) {
        for (int64_t e = 0; e < E; e++) dz[e] = z[e] > 0.0f ? dz[e] + (float)reg_e[e] : 0.0f;
        continue;
      }
      double dot = 0.0;
      for (int64_t e = 0; e < E; e++) {
        const double dp = (gate[e] > 0.0f ? (double)dz[e] : 0.0) + aux_e[e];
        dz[e] = (float)dp;
        dot += (double)p[e] * dp;
      }
      for (int64_t e = 0; e < E; e++) dz[e] = (float)((double)p[e] * ((double)dz[e] - dot));
    }
  }
}

sparq_status sparq_moe_backward(sparq_moe_state *st, const sparq_moe_dims *d, const sparq_moe_weights *w,
                                const sparq_moe_grads *g, const float *x, const float *dy, float *dx,
                                sparq_moe_l1 l1, float reg_scale, float aux_scale) {
  static const char who[] = "sparq_moe_backward";
  if (st && !st->has_forward) return sparq_fail(SPARQ_ERR_ARG, "%s: no forward to differentiate", who);
  sparq_status s = check_args(who, st, d, w, x, dx, st ? st->N : 1);
  if (s) return s;
  if (!dy || !g) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if ( st->d.C != d->C || st->d.H != d->H || st->d.E != d->E || st->d.router != d->router)
    return sparq_fail(SPARQ_ERR_ARG, "%s: no forward of this layer to differentiate", who);
  const int64_t N = st->N, C = d->C, H = d->H, E = d->E, slots = st->nnz;
  const int32_t *slot_of = st->slot_of;
  /* the gates: dO[i] = R dy[t], dR[t,e] = <dy[t], o[i]> */
  float *dO = st->dc, *dgate = st->dgate;
  memset(dgate, 0, (size_t)(N * E) * sizeof(float));
#pragma omp parallel if (par_rows(slots, C))
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; t++) {
      const float *dyr = dy + t * C;
      for (int64_t e = 0; e < E; e++) {
        const int32_t i = slot_of[t * E + e];
        if (i < 0) continue;
        const float r = st->gate[t * E + e];
        const float *orow = st->o + (int64_t)i * C;
        float *dor = dO + (int64_t)i * C;
        double acc = 0.0;
        for (int64_t c = 0; c < C; c++) {
          dor[c] = r * dyr[c];
          acc += (double)dyr[c] * (double)orow[c];
        }
        dgate[t * E + e] = (float)acc;
      }
    }
  }
  for (int64_t e = 0; e < E; e++) {
    const int64_t n = st->counts[e], o0 = st->offs[e];
    if (n == 0) continue;
    const float *pw = w->proj_w + e * C * H;
    if ((s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, n, H, C, 1.0f, dO + o0 * C, C, pw, H, 0.0f, st->dh + o0 * H,
                         H)))
      return s;
    if ((s = sparq_nn_linear_backward(NULL, g->proj_w ? g->proj_w + e * C * H : NULL,
                                      g->proj_b ? g->proj_b + e * C : NULL, dO + o0 * C, st->hg + o0 * H, pw, n, H,
                                      C)))
      return s;
  }
  sparq_nn_gelu_backward(st->dh, st->h, st->dh, (size_t)(slots * H));
  float *dXg = st->dc; /* dO is spent */
  for (int64_t e = 0; e < E; e++) {
    const int64_t n = st->counts[e], o0 = st->offs[e];
    if (n == 0) continue;
    const float *fw = w->fc_w + e * H * C;
    if ((s = sparq_nn_linear_backward(NULL, g->fc_w ? g->fc_w + e * H * C : NULL, g->fc_b ? g->fc_b + e * H : NULL,
                                      st->dh + o0 * H, st->xg + o0 * C, fw, n, C, H)))
      return s;
    if ((s = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, n, C, H, 1.0f, st->dh + o0 * H, H, fw, C, 0.0f, dXg + o0 * C,
                         C)))
      return s;
  }
  sum_slots(slot_of, NULL, dXg, N, E, C, dx);

  /* the router: the losses' gradients per expert, then dz, dWr and dx */
  double reg_e[SPARQ_MOE_MAX_EXPERTS], aux_e[SPARQ_MOE_MAX_EXPERTS];
  for (int64_t e = 0; e < E; e++) {
    const double f = (double)E / ((double)d->k * (double)N) * (double)st->counts[e];
    reg_e[e] = (double)reg_scale * (l1 == SPARQ_MOE_L1_PLAIN ? 1.0 : f) / (double)N;
    aux_e[e] = (double)aux_scale * (double)E / ((double)d->k * (double)N * (double)N) * (double)st->counts[e];
  }
  router_backward_rows(st, d, N, reg_e, aux_e);
  if (g->router && (s = sparq_sgemm(SPARQ_TRANS, SPARQ_NO_TRANS, E, C, N, 1.0f, dgate, E, x, C, 1.0f, g->router, C)))
    return s;
  return sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, N, C, E, 1.0f, dgate, E, w->router, C, 1.0f, dx, C);
}
