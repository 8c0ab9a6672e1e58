/* The DiT's activation and scratch buffers: every buffer of one dit_work
 * carved out of one allocation, each 64-byte aligned. The same carving runs
 * twice, once without memory to count the floats and once to hand out the
 * pointers, so the two can never disagree. */
#include <string.h>

#include "nn/dit_internal.h"
#include "sparq/base.h"

#define ROUND16(x) (((x) + 15) / 16 * 16)

typedef struct carver {
  float *base; /* NULL while counting */
  size_t used; /* floats */
} carver;

static float *take(carver *cv, size_t n) {
  float *p = cv->base ? cv->base + cv->used : NULL;
  cv->used += ROUND16(n);
  return p;
}

static void carve(const sparq_dit *m, dit_work *w, carver *cv, int64_t B, bool training) {
  const sparq_dit_config *c = &m->cfg;
  const size_t Bs = (size_t)B, N = (size_t)(B * m->T), D = (size_t)c->hidden_size, M = (size_t)m->M;
  const size_t K = (size_t)m->K, F = SPARQ_DIT_FREQ_DIM, E = (size_t)c->extra_dim, H = (size_t)c->num_heads;
  for (int i = 0; i < w->n_res; i++) w->res[i] = take(cv, N * D);
  for (int i = 0; i < w->n_acts; i++) {
    dit_block_acts *a = &w->acts[i];
    a->mod = take(cv, Bs * 6 * D);
    a->ln1 = take(cv, N * D);
    a->ln1_mean = take(cv, N);
    a->ln1_rstd = take(cv, N);
    a->mod1 = take(cv, N * D);
    a->q = take(cv, N * D);
    a->k = take(cv, N * D);
    a->v = take(cv, N * D);
    a->att = take(cv, N * D);
    a->lse = take(cv, Bs * H * (size_t)m->T);
    a->attn_out = take(cv, N * D);
    a->res_mid = take(cv, N * D);
    a->ln2 = take(cv, N * D);
    a->ln2_mean = take(cv, N);
    a->ln2_rstd = take(cv, N);
    a->mod2 = take(cv, N * D);
    a->fc1 = take(cv, N * M);
    a->fc1_gelu = take(cv, N * M);
    a->mlp_out = take(cv, N * D);
  }
  w->patches = take(cv, N * K);
  w->t_freq = take(cv, Bs * F);
  w->e_in = E ? take(cv, Bs) : NULL;
  w->e_freq = E ? take(cv, Bs * E) : NULL;
  w->e_proj = E ? take(cv, Bs * F) : NULL;
  w->h1 = take(cv, Bs * D);
  w->s1 = take(cv, Bs * D);
  w->c = take(cv, Bs * D);
  w->sc = take(cv, Bs * D);
  w->fmod = take(cv, Bs * 2 * D);
  w->lnf = take(cv, N * D);
  w->lnf_mean = take(cv, N);
  w->lnf_rstd = take(cv, N);
  w->modf = take(cv, N * D);
  w->lin = take(cv, N * K);
  if (!training) return;
  w->d_res = take(cv, N * D);
  w->d_a = take(cv, N * D);
  w->d_b = take(cv, N * D);
  w->d_q = take(cv, N * D);
  w->d_k = take(cv, N * D);
  w->d_v = take(cv, N * D);
  w->d_fc = take(cv, N * M);
  w->d_lin = take(cv, N * K);
  w->d_mod = take(cv, Bs * 6 * D);
  w->d_sc = take(cv, Bs * D);
  w->d_c = take(cv, Bs * D);
  w->d_s1 = take(cv, Bs * D);
  w->d_h1 = take(cv, Bs * D);
  w->d_tfreq = take(cv, Bs * F);
}

void dit_work_free(dit_work *w) {
  sparq_free(w->arena);
  sparq_free(w->res);
  sparq_free(w->acts);
  sparq_free(w->y);
  memset(w, 0, sizeof *w);
}

sparq_status dit_reserve(sparq_dit *m, dit_work *w, int64_t B, bool training) {
  if (B <= w->cap_B) return SPARQ_OK;
  dit_work nw = {0};
  nw.n_res = training ? (int)m->cfg.depth + 1 : 2;
  nw.n_acts = training ? (int)m->cfg.depth : 1;
  nw.res = sparq_calloc((size_t)nw.n_res, sizeof *nw.res, "DiT activations");
  nw.acts = sparq_calloc((size_t)nw.n_acts, sizeof *nw.acts, "DiT activations");
  nw.y = sparq_alloc((size_t)B * sizeof *nw.y, "DiT labels");
  if (!nw.res || !nw.acts || !nw.y) {
    dit_work_free(&nw);
    return SPARQ_ERR_NOMEM;
  }
  carver cv = {NULL, 0};
  carve(m, &nw, &cv, B, training);
  size_t bytes;
  if (!sparq_size_mul(cv.used, sizeof(float), &bytes)) {
    dit_work_free(&nw);
    return sparq_fail(SPARQ_ERR_NOMEM, "DiT activations: %lld samples overflow the size", (long long)B);
  }
  nw.arena = sparq_alloc(bytes, training ? "DiT activations" : "DiT inference buffers");
  if (!nw.arena) {
    dit_work_free(&nw);
    return SPARQ_ERR_NOMEM;
  }
  cv = (carver){nw.arena, 0};
  carve(m, &nw, &cv, B, training);
  nw.cap_B = B;
  dit_work_free(w);
  *w = nw;
  return SPARQ_OK;
}
