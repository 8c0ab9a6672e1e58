/* FP8 activations: the arena layout of FP8 mode, the mode switch, the
 * saved-bytes ledger, the statistics and the test descriptors (gpt.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"

static size_t groups_of(size_t cols) { return (cols + SPARQ_FP8_ACT_GROUP - 1) / SPARQ_FP8_ACT_GROUP; }
/* Floats that hold `bytes` bytes, rounded up to a 64-byte multiple. */
static size_t floats_for(size_t bytes) { return gpt_round16((bytes + 3) / 4); }
static size_t scale_count(size_t N, size_t cols, size_t group) { return group ? N * groups_of(cols) : 1; }
static size_t tensor_floats(size_t N, size_t cols, size_t group) {
  return floats_for(N * cols) + gpt_round16(scale_count(N, cols, group));
}
static size_t hp_bytes(const sparq_gpt *g) { return g->fp8_attn_fp32 ? sizeof(float) : sizeof(uint16_t); }

size_t gpt_fp8_arena_floats(const sparq_gpt *g, size_t N) {
  const size_t C = (size_t)g->cfg.n_embd, NH = (size_t)g->cfg.n_head, L = (size_t)g->cfg.n_layer;
  const size_t V = (size_t)g->cfg.vocab_size, G = SPARQ_FP8_ACT_GROUP;
  const size_t block = 2 * tensor_floats(N, C, G) /* ln_1.in ln_2.in */ + 2 * tensor_floats(N, C, 0) /* c_attn c_fc */ +
                       tensor_floats(N, 4 * C, G) /* gelu.in */ + tensor_floats(N, 4 * C, 0) /* mlp.c_proj.in */ +
                       4 * gpt_round16(N) /* mean rstd */ + gpt_round16(N * NH) /* lse */ +
                       4 * floats_for(N * C * hp_bytes(g));
  const size_t top = tensor_floats(N, C, G) + tensor_floats(N, C, 0);
  const size_t work = 4 * gpt_round16(N * C) /* X */ + gpt_round16(N * C) /* Y */;
  const size_t gmax_cols = groups_of(4 * C) > groups_of(V) ? groups_of(4 * C) : groups_of(V);
  return L * block + top + work + gpt_round16(N * gmax_cols);
}

void gpt_fp8_carve(sparq_gpt *g, gpt_fp8_block *blocks, float **cursor, size_t N) {
  const size_t C = (size_t)g->cfg.n_embd, NH = (size_t)g->cfg.n_head, L = (size_t)g->cfg.n_layer;
  const size_t V = (size_t)g->cfg.vocab_size, G = SPARQ_FP8_ACT_GROUP;
  float *p = *cursor;
#define TAKE_BYTES(n) ((void *)gpt_take(&p, floats_for(n)))
#define TENSOR(t, c, grp)                                    \
  do {                                                       \
    (t).q = TAKE_BYTES(N * (c));                             \
    (t).scales = gpt_take(&p, scale_count(N, (c), (grp))); \
    (t).cols = (c), (t).group = (grp);                       \
  } while (0)
  for (size_t l = 0; l < L; l++) {
    gpt_fp8_block *b = &blocks[l];
    TENSOR(b->ln_1_in, C, G);
    TENSOR(b->attn_in, C, 0);
    TENSOR(b->ln_2_in, C, G);
    TENSOR(b->fc_in, C, 0);
    TENSOR(b->gelu_in, 4 * C, G);
    TENSOR(b->proj_in, 4 * C, 0);
    b->ln_1_mean = gpt_take(&p, N), b->ln_1_rstd = gpt_take(&p, N);
    b->ln_2_mean = gpt_take(&p, N), b->ln_2_rstd = gpt_take(&p, N);
    b->lse = gpt_take(&p, N * NH);
    b->q = TAKE_BYTES(N * C * hp_bytes(g));
    b->k = TAKE_BYTES(N * C * hp_bytes(g));
    b->v = TAKE_BYTES(N * C * hp_bytes(g));
    b->att = TAKE_BYTES(N * C * hp_bytes(g));
  }
  TENSOR(g->fp8_lnf_in, C, G);
  TENSOR(g->fp8_head_in, C, 0);
  /* backward's view of the work buffers: Y, then X = q k v att, or the MLP's fc */
  gpt_block_acts *w = &g->fp8_work;
  memset(w, 0, sizeof *w);
  w->ln_1 = w->ln_2 = gpt_take(&p, N * C);
  w->q = gpt_take(&p, N * C);
  w->k = gpt_take(&p, N * C);
  w->v = gpt_take(&p, N * C);
  w->att = gpt_take(&p, N * C);
  w->fc = w->fc_gelu = w->q;
  const size_t gmax_cols = groups_of(4 * C) > groups_of(V) ? groups_of(4 * C) : groups_of(V);
  g->fp8_gmax = gpt_take(&p, N * gmax_cols);
#undef TENSOR
#undef TAKE_BYTES
  *cursor = p;
}

sparq_status sparq_gpt_set_fp8_activations(sparq_gpt *g, bool on) {
  if (!g) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_set_fp8_activations: NULL model");
  if (on && g->cfg.moe_router != SPARQ_MOE_NONE)
    return sparq_fail(SPARQ_ERR_ARG,
                      "sparq_gpt_set_fp8_activations: FP8 activations are not supported for MoE models "
                      "(moe_router %s); use a dense model",
                      sparq_moe_router_name(g->cfg.moe_router));
  if (on == g->fp8_act) return SPARQ_OK;
  gpt_release_buffers(g);
  g->fp8_act = on;
  return SPARQ_OK;
}

bool sparq_gpt_fp8_activations(const sparq_gpt *g) { return g && g->fp8_act; }

void gpt_fp8_set_attn_fp32(sparq_gpt *g, bool on) {
  if (on == g->fp8_attn_fp32) return;
  gpt_release_buffers(g);
  g->fp8_attn_fp32 = on;
}

size_t sparq_gpt_saved_activation_bytes(const sparq_gpt *g) {
  if (!g || !g->has_forward) return 0;
  const sparq_gpt_config *c = &g->cfg;
  const size_t B = (size_t)g->B, T = (size_t)g->T, N = B * (size_t)gpt_rows_per_seq(g, g->T);
  const size_t C = (size_t)c->n_embd, NH = (size_t)c->n_head, V = (size_t)c->vocab_size, F = (size_t)c->gft_beta_dim;
  const size_t f = sizeof(float), NC = N * C;
  size_t bytes = 0;
  if (g->fp8_act) {
    const size_t per_block = 12 * NC /* codes: 4 tensors of C columns, 2 of 4C */ +
                             f * (2 * N * groups_of(C) + N * groups_of(4 * C) + 3) /* scales */ +
                             4 * NC * hp_bytes(g) /* q k v att */ + f * (4 * N + N * NH) /* mean rstd lse */;
    bytes += (size_t)c->n_layer * per_block;
    bytes += 2 * NC + f * (N * groups_of(C) + 1) + f * 2 * N; /* ln_f.in, lm_head.in, ln_f mean rstd */
  } else {
    for (int64_t l = 0; l < c->n_layer; l++) {
      const bool moe = c->moe_router != SPARQ_MOE_NONE && (c->moe_layers >> l & 1);
      bytes += f * ((moe ? 8 : 16) * NC + 4 * N + N * NH);
    }
    bytes += f * (2 * NC + 2 * N);
  }
  bytes += f * N * V; /* logits */
  if (g->has_targets) bytes += f * N * V + sizeof(int32_t) * N; /* probs, targets */
  bytes += sizeof(int32_t) * B * T;                           /* tokens */
  if (c->num_classes > 0) bytes += sizeof(int32_t) * B + f * B * F;
  return bytes;
}

void sparq_gpt_set_fp8_act_stats(sparq_gpt *g, bool on) {
  if (!g) return;
  g->fp8_stats_on = on;
  if (!on) g->fp8_stats_valid = false;
}

static const struct {
  const char *name, *format;
  int64_t group;
} KINDS[SPARQ_GPT_ACT_KINDS] = {
    {"ln_1.in", "e4m3", SPARQ_FP8_ACT_GROUP},   {"c_attn.in", "e4m3", 0}, {"ln_2.in", "e4m3", SPARQ_FP8_ACT_GROUP},
    {"c_fc.in", "e4m3", 0},                 {"gelu.in", "e4m3", SPARQ_FP8_ACT_GROUP},
    {"mlp.c_proj.in", "e4m3", 0},           {"ln_f.in", "e4m3", SPARQ_FP8_ACT_GROUP},
    {"lm_head.in", "e4m3", 0},              {"attn.qkvo", "bf16", 0},
};

sparq_status sparq_gpt_fp8_act_stats(const sparq_gpt *g, sparq_gpt_act_stat *out) {
  if (!g || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_fp8_act_stats: NULL argument");
  if (!g->fp8_act || !g->fp8_stats_on || !g->fp8_stats_valid)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gpt_fp8_act_stats: no forward ran with FP8 activations and their "
                                     "statistics on (sparq_gpt_set_fp8_activations, sparq_gpt_set_fp8_act_stats)");
  for (int k = 0; k < SPARQ_GPT_ACT_KINDS; k++) {
    const gpt_fp8_stat_acc *a = &g->fp8_stats[k];
    out[k] = (sparq_gpt_act_stat){
        .name = KINDS[k].name,
        .format = k == SPARQ_GPT_ACT_QKVO && g->fp8_attn_fp32 ? "f32" : KINDS[k].format,
        .group = KINDS[k].group,
        .tensors = a->tensors,
        .elements = a->elements,
        .rel_mse = a->ref2 > 0 ? a->err2 / a->ref2 : 0.0,
        .saturated = a->elements > 0 ? (double)a->saturated / (double)a->elements : 0.0,
        .nonfinite = g->fp8_nonfinite[k],
    };
  }
  return SPARQ_OK;
}

static void put(gpt_fp8_desc *out, size_t cap, size_t *n, const char *name, const gpt_fp8_tensor *t,
                size_t rows) {
  if (*n < cap) {
    gpt_fp8_desc *d = &out[*n];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->fmt = SPARQ_FP8_E4M3;
    d->rows = rows, d->cols = t->cols, d->group = t->group;
    d->n_scales = scale_count(rows, t->cols, t->group);
    d->q = t->q, d->scales = t->scales;
  }
  ++*n;
}

static void put_grad(gpt_fp8_desc *out, size_t cap, size_t *n, const char *name, size_t rows, size_t cols,
                     const float *scale) {
  if (*n < cap) {
    gpt_fp8_desc *d = &out[*n];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->is_grad = true;
    d->fmt = SPARQ_FP8_E5M2;
    d->rows = rows, d->cols = cols, d->group = 0, d->n_scales = 1;
    d->scales = scale;
  }
  ++*n;
}

size_t gpt_fp8_describe(const sparq_gpt *g, gpt_fp8_desc *out, size_t cap) {
  if (!g || !g->fp8_act || !g->has_forward) return 0;
  const size_t N = (size_t)(g->B * gpt_rows_per_seq(g, g->T)), C = (size_t)g->cfg.n_embd;
  const size_t V = (size_t)g->cfg.vocab_size;
  size_t n = 0;
  char name[48];
  for (int64_t l = 0; l < g->cfg.n_layer; l++) {
    const gpt_fp8_block *b = &g->fp8[l];
    const struct {
      const char *what;
      const gpt_fp8_tensor *t;
    } list[] = {{"ln_1.in", &b->ln_1_in}, {"c_attn.in", &b->attn_in},   {"ln_2.in", &b->ln_2_in},
                {"c_fc.in", &b->fc_in},   {"gelu.in", &b->gelu_in},     {"mlp.c_proj.in", &b->proj_in}};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
      snprintf(name, sizeof name, "h.%" PRId64 ".%s", l, list[i].what);
      put(out, cap, &n, name, list[i].t, N);
    }
  }
  put(out, cap, &n, "ln_f.in", &g->fp8_lnf_in, N);
  put(out, cap, &n, "lm_head.in", &g->fp8_head_in, N);
  if (!g->fp8_grads_valid) return n;
  static const char *const grad_names[GPT_GRAD_PER_BLOCK] = {"attn.c_attn.dout", "attn.c_proj.dout",
                                                             "mlp.c_fc.dout", "mlp.c_proj.dout"};
  const size_t grad_cols[GPT_GRAD_PER_BLOCK] = {3 * C, C, 4 * C, C};
  for (int64_t l = 0; l < g->cfg.n_layer; l++)
    for (int j = 0; j < GPT_GRAD_PER_BLOCK; j++) {
      snprintf(name, sizeof name, "h.%" PRId64 ".%s", l, grad_names[j]);
      put_grad(out, cap, &n, name, N, grad_cols[j], &g->fp8_grad_scale[l * GPT_GRAD_PER_BLOCK + j]);
    }
  put_grad(out, cap, &n, "lm_head.dout", N, V, &g->fp8_grad_scale[g->cfg.n_layer * GPT_GRAD_PER_BLOCK]);
  return n;
}
