/* MoE routing: the ReLU and TopK gates of every row, the routing lists the
 * dispatch walks, and the regulariser and auxiliary losses (moe.h). */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "nn/moe_internal.h"
#include "nn/nn_internal.h"
#include "sparq/base.h"

const char *sparq_moe_router_name(sparq_moe_router r) {
  return r == SPARQ_MOE_RELU ? "relu" : r == SPARQ_MOE_TOPK ? "topk" : "none";
}

sparq_status sparq_moe_router_parse(const char *s, sparq_moe_router *out) {
  if (s && !strcmp(s, "relu")) *out = SPARQ_MOE_RELU;
  else if (s && !strcmp(s, "topk")) *out = SPARQ_MOE_TOPK;
  else if (s && !strcmp(s, "none")) *out = SPARQ_MOE_NONE;
  else return sparq_fail(SPARQ_ERR_ARG, "MoE router '%.40s' is not relu, topk or none", s ? s : "(null)");
  return SPARQ_OK;
}

sparq_status sparq_moe_dims_check(const sparq_moe_dims *d) {
  if (!d) return sparq_fail(SPARQ_ERR_ARG, "MoE dims: NULL");
  if (d->router != SPARQ_MOE_RELU && d->router != SPARQ_MOE_TOPK)
    return sparq_fail(SPARQ_ERR_ARG, "MoE dims: router %d is not relu or topk", (int)d->router);
  if (d->E < 1 || d->E > SPARQ_MOE_MAX_EXPERTS)
    return sparq_fail(SPARQ_ERR_ARG, "MoE dims: %" PRId64 " experts is outside 1..%d", d->E, SPARQ_MOE_MAX_EXPERTS);
  if (d->k < 1 || d->k > d->E)
    return sparq_fail(SPARQ_ERR_ARG, "MoE dims: top-k %" PRId64 " is outside 1..experts (%" PRId64 ")", d->k, d->E);
  if (d->C < 1 || d->H < 1 || d->C > 65536 || d->H > 1 << 20)
    return sparq_fail(SPARQ_ERR_ARG, "MoE dims: width %" PRId64 " or hidden width %" PRId64 " out of range", d->C,
                      d->H);
  return SPARQ_OK;
}

/* softmax over E logits in index order, then the k largest kept (the lower
 * index wins a tie, as a stable sort would). A chosen probability that
 * underflowed to 0 (logit gaps beyond ~87) leaves its expert unrouted. */
static int topk_row(const float *z, float *p, float *gate, int64_t E, int64_t k) {
  float m = z[0];
  for (int64_t e = 1; e < E; e++) m = z[e] > m ? z[e] : m;
  float sum = 0.0f;
  for (int64_t e = 0; e < E; e++) sum += (p[e] = expf(z[e] - m));
  uint8_t chosen[SPARQ_MOE_MAX_EXPERTS] = {0};
  for (int64_t e = 0; e < E; e++) p[e] /= sum;
  for (int64_t j = 0; j < k; j++) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; e++)
      if (!chosen[e] && (best < 0 || p[e] > p[best])) best = e;
    if (best < 0) break;
    chosen[best] = 1;
  }
  int n = 0;
  for (int64_t e = 0; e < E; e++) {
    gate[e] = chosen[e] ? p[e] : 0.0f;
    n += gate[e] > 0.0f;
  }
  return n;
}

static int relu_row(const float *z, float *gate, int64_t E) {
  int n = 0;
  for (int64_t e = 0; e < E; e++) {
    gate[e] = z[e] > 0.0f ? z[e] : 0.0f;
    n += gate[e] > 0.0f;
  }
  return n;
}

void moe_route(sparq_moe_state *st, const sparq_moe_dims *d, int64_t N) {
  const int64_t E = d->E;
  const bool topk = d->router == SPARQ_MOE_TOPK;
#pragma omp parallel if (N * E >= NN_PAR_MIN / 4)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t t = 0; t < N; t++) {
      float *g = st->gate + t * E;
      int n = topk ? topk_row(st->z + t * E, st->prob + t * E, g, E, d->k) : relu_row(st->z + t * E, g, E);
      st->active[t] = (uint8_t)n;
    }
  }
  for (int64_t e = 0; e < E; e++) st->counts[e] = 0;
  for (int64_t t = 0; t < N; t++)
    for (int64_t e = 0; e < E; e++) {
      const bool on = st->gate[t * E + e] > 0.0f;
      st->counts[e] += on;
      st->slot_of[t * E + e] = on ? -2 : -1;
    }
  st->offs[0] = 0;
  for (int64_t e = 0; e < E; e++) st->offs[e + 1] = st->offs[e] + st->counts[e];
  st->nnz = st->offs[E];
  int64_t fill[SPARQ_MOE_MAX_EXPERTS];
  for (int64_t e = 0; e < E; e++) fill[e] = st->offs[e];
  for (int64_t t = 0; t < N; t++)
    for (int64_t e = 0; e < E; e++)
      if (st->slot_of[t * E + e] == -2) {
        st->slot_row[fill[e]] = (int32_t)t;
        st->slot_of[t * E + e] = (int32_t)fill[e]++;
      }
  /* the losses, in double over rows in order */
  double colsum[SPARQ_MOE_MAX_EXPERTS] = {0}, psum[SPARQ_MOE_MAX_EXPERTS] = {0};
  for (int64_t t = 0; t < N; t++)
    for (int64_t e = 0; e < E; e++) {
      colsum[e] += st->gate[t * E + e];
      if (topk) psum[e] += st->prob[t * E + e];
    }
  double lb = 0.0, plain = 0.0, aux = 0.0;
  for (int64_t e = 0; e < E; e++) {
    const double f = (double)E / ((double)d->k * (double)N) * (double)st->counts[e];
    lb += f * colsum[e];
    plain += colsum[e];
    aux += psum[e] * (double)st->counts[e];
  }
  st->reg_lb = lb / (double)N;
  st->reg_plain = plain / (double)N;
  st->aux = topk ? aux * (double)E / ((double)d->k * (double)N * (double)N) : 0.0;
  st->sparsity = 1.0 - (double)st->nnz / ((double)N * (double)E);
}

void sparq_moe_reg(const float *R, int64_t T, int64_t E, int64_t k, int64_t *counts, double *reg_lb,
                   double *reg_plain, double *sparsity) {
  double lb = 0.0, plain = 0.0;
  int64_t nnz = 0;
  for (int64_t e = 0; e < E; e++) {
    int64_t c = 0;
    double s = 0.0;
    for (int64_t t = 0; t < T; t++) {
      c += R[t * E + e] > 0.0f;
      s += R[t * E + e];
    }
    if (counts) counts[e] = c;
    nnz += c;
    lb += (double)E / ((double)k * (double)T) * (double)c * s;
    plain += s;
  }
  if (reg_lb) *reg_lb = lb / (double)T;
  if (reg_plain) *reg_plain = plain / (double)T;
  if (sparsity) *sparsity = 1.0 - (double)nnz / ((double)T * (double)E);
}
