/* COAT's FP8 AdamW (spec coat-fp8.md section 3): m and v stored as FP8
 * codes in groups of 128 with per-group scale, k and c; each step
 * dequantises a group, runs sparq_adamw_step's exact FP32 operations on it
 * (adamw_internal.h) and requantises it. Groups are independent, so any
 * thread may take any group and the bits do not depend on the thread
 * count; the counters are integer sums. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "sparq/coat.h"
#include "sparq/train.h"
#include "train/adamw_internal.h"
#include "train/fp8_group_scan.h"
#include "train/param_spans.h"

#define G SPARQ_FP8_GROUP

sparq_adamw_fp8_config sparq_adamw_fp8_config_default(void) {
  sparq_adamw_fp8_config c = {.m_format = SPARQ_FP8_E4M3, .v_format = SPARQ_FP8_E4M3, .dre = true};
  return c;
}

static size_t groups_of(size_t n) { return (n + G - 1) / G; }

size_t sparq_adamw_fp8_state_bytes(const sparq_param_list *pl) {
  if (!pl || !pl->items) return 0;
  size_t bytes = 0;
  for (size_t i = 0; i < pl->count; i++) {
    if (pl->items[i].frozen) continue;
    const size_t n = pl->items[i].numel;
    bytes += 2 * n + 24 * groups_of(n);
  }
  return bytes;
}

static void moment_free(sparq_fp8_moment *m) {
  sparq_free(m->codes);
  sparq_free(m->scale);
  sparq_free(m->k);
  sparq_free(m->c);
  memset(m, 0, sizeof *m);
}

void sparq_adamw_fp8_free(sparq_adamw_fp8_state *st) {
  if (!st) return;
  sparq_free(st->tensors);
  moment_free(&st->m);
  moment_free(&st->v);
  sparq_free(st->m32);
  sparq_free(st->v32);
  if (st->shadow) {
    sparq_adamw_free(st->shadow);
    sparq_free(st->shadow);
  }
  memset(st, 0, sizeof *st);
}

/* Zero codes with scale 1, k 1, c 1: every element dequantises to 0. */
static sparq_status moment_alloc(sparq_fp8_moment *m, size_t numel, size_t ngroups, const char *what) {
  m->codes = sparq_calloc(numel, 1, what);
  m->scale = sparq_alloc(ngroups * sizeof(float), what);
  m->k = sparq_alloc(ngroups * sizeof(float), what);
  m->c = sparq_alloc(ngroups * sizeof(float), what);
  if (!m->codes || !m->scale || !m->k || !m->c) return SPARQ_ERR_NOMEM;
  for (size_t i = 0; i < ngroups; i++) m->scale[i] = m->k[i] = m->c[i] = 1.0f;
  return SPARQ_OK;
}

static bool format_ok(sparq_fp8_format f) { return f == SPARQ_FP8_E4M3 || f == SPARQ_FP8_E5M2; }

sparq_status sparq_adamw_fp8_init(sparq_adamw_fp8_state *st, const sparq_param_list *pl,
                                  const sparq_adamw_fp8_config *cfg) {
  if (!st) return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_fp8_init: state is NULL");
  memset(st, 0, sizeof *st);
  if (!pl || !pl->data || !pl->grad || !pl->items || pl->numel == 0)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_fp8_init: the parameter list is NULL or not allocated");
  if (!cfg || !format_ok(cfg->m_format) || !format_ok(cfg->v_format))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_fp8_init: NULL config or unknown FP8 format");
  st->cfg = *cfg;
  size_t nt = 0;
  for (size_t i = 0; i < pl->count; i++) nt += !pl->items[i].frozen;
  if (nt == 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_fp8_init: every parameter is frozen");
  st->tensors = sparq_calloc(nt, sizeof *st->tensors, "FP8 AdamW tensors");
  if (!st->tensors) return SPARQ_ERR_NOMEM;
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    if (p->frozen) continue;
    sparq_adamw_fp8_tensor *t = &st->tensors[st->ntensors++];
    *t = (sparq_adamw_fp8_tensor){.param = i, .offset = p->offset, .numel = p->numel, .code_offset = st->numel,
                                  .group_offset = st->ngroups, .ngroups = groups_of(p->numel)};
    st->numel += p->numel;
    st->ngroups += t->ngroups;
  }
  sparq_status s = SPARQ_OK;
  if (cfg->identity) {
    st->m32 = sparq_calloc(st->numel, sizeof(float), "FP8 AdamW identity m");
    st->v32 = sparq_calloc(st->numel, sizeof(float), "FP8 AdamW identity v");
    if (!st->m32 || !st->v32) s = SPARQ_ERR_NOMEM;
  } else {
    s = moment_alloc(&st->m, st->numel, st->ngroups, "FP8 AdamW exp_avg");
    if (!s) s = moment_alloc(&st->v, st->numel, st->ngroups, "FP8 AdamW exp_avg_sq");
  }
  if (!s && cfg->shadow) {
    st->shadow = sparq_calloc(1, sizeof *st->shadow, "FP8 AdamW shadow");
    s = st->shadow ? sparq_adamw_init(st->shadow, pl) : SPARQ_ERR_NOMEM;
  }
  if (s) sparq_adamw_fp8_free(st);
  return s;
}

/* The state must have been made for this list (same trainable tensors). */
static sparq_status check_layout(const char *fn, const sparq_adamw_fp8_state *st, const sparq_param_list *pl) {
  if (!st->tensors || (!st->cfg.identity && (!st->m.codes || !st->v.codes)) || (st->cfg.identity && !st->m32))
    return sparq_fail(SPARQ_ERR_ARG, "%s: the state is not initialised (sparq_adamw_fp8_init)", fn);
  size_t nt = 0;
  for (size_t i = 0; i < pl->count; i++) nt += !pl->items[i].frozen;
  if (nt != st->ntensors)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the state has %zu tensors, the parameter list %zu trainable ones", fn,
                      st->ntensors, nt);
  for (size_t t = 0; t < st->ntensors; t++) {
    const sparq_adamw_fp8_tensor *q = &st->tensors[t];
    const sparq_param *p = q->param < pl->count ? &pl->items[q->param] : NULL;
    if (!p || p->frozen || p->numel != q->numel || p->offset != q->offset)
      return sparq_fail(SPARQ_ERR_ARG, "%s: state tensor %zu does not match the parameter list", fn, t);
  }
  if (st->shadow && st->shadow->numel != pl->numel)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the shadow does not match the parameter list", fn);
  return SPARQ_OK;
}

/* The tensor holding flat group gi: the last one whose group_offset <= gi. */
static size_t tensor_of_group(const sparq_adamw_fp8_state *st, size_t gi) {
  size_t lo = 0, hi = st->ntensors - 1;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo + 1) / 2;
    if (st->tensors[mid].group_offset <= gi) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

static sparq_fp8_group group_at(const sparq_fp8_moment *m, size_t gi) {
  return (sparq_fp8_group){.scale = m->scale[gi], .k = m->k[gi], .c = m->c[gi]};
}

static void group_store(sparq_fp8_moment *m, size_t gi, const sparq_fp8_group *g) {
  m->scale[gi] = g->scale, m->k[gi] = g->k, m->c[gi] = g->c;
}

sparq_status sparq_adamw_fp8_step(sparq_adamw_fp8_state *st, sparq_param_list *pl, const sparq_adamw_config *cfg,
                                  float lr) {
  static const char *fn = "sparq_adamw_fp8_step";
  if (!st || !pl || !cfg) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL state, parameters or config", fn);
  if (!pl->data || !pl->grad || !pl->items)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the parameter list is not allocated", fn);
  sparq_status s = check_layout(fn, st, pl);
  if (!s) s = adamw_check_hyper(fn, cfg, lr);
  if (s) return s;
  const int64_t t = st->step + 1;
  const adamw_coef c = adamw_coef_make(cfg, lr, t);
  const sparq_adamw_fp8_config *qc = &st->cfg;
  for (size_t i = 0; i < st->ntensors; i++) {
    sparq_adamw_fp8_tensor *q = &st->tensors[i];
    q->m_nonzero = q->m_zeroed = q->v_nonzero = q->v_zeroed = 0;
  }
  uint64_t nan_p = 0, nan_m = 0, nan_v = 0, v_flush = 0;
  const size_t ngroups = st->ngroups;
  const adamw_range_fn run = adamw_range_pick();

#pragma omp parallel if (st->numel >= PARAM_SPANS_PARALLEL_MIN) reduction(+ : nan_p, nan_m, nan_v, v_flush)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (size_t gi = 0; gi < ngroups; gi++) {
      sparq_adamw_fp8_tensor *q = &st->tensors[tensor_of_group(st, gi)];
      const sparq_param *prm = &pl->items[q->param];
      const size_t start = (gi - q->group_offset) * G;
      const size_t n = q->numel - start < G ? q->numel - start : G;
      const size_t at = q->code_offset + start;
      float m[G], v[G];
      if (qc->identity) {
        memcpy(m, st->m32 + at, n * sizeof(float));
        memcpy(v, st->v32 + at, n * sizeof(float));
      } else {
        const sparq_fp8_group gm = group_at(&st->m, gi), gv = group_at(&st->v, gi);
        sparq_fp8_dequantize_group(st->m.codes + at, n, qc->m_format, &gm, m);
        sparq_fp8_dequantize_group(st->v.codes + at, n, qc->v_format, &gv, v);
      }
      float *p = pl->data + prm->offset + start;
      const float *g = pl->grad + prm->offset + start;
      if (st->shadow) {
        float *sm = st->shadow->exp_avg + prm->offset + start, *sv = st->shadow->exp_avg_sq + prm->offset + start;
        for (size_t i = 0; i < n; i++) adamw_moments_one(g[i], &sm[i], &sv[i], &c);
      }
      run(p, g, m, v, n, &c, c.use_decay && prm->decay);
      nan_p += fp8_count_nonfinite(p, n);
      nan_m += fp8_count_nonfinite(m, n);
      nan_v += fp8_count_nonfinite(v, n);
      uint64_t mnz = 0, mz = 0, vnz = 0, vz = 0;
      if (qc->identity) {
        memcpy(st->m32 + at, m, n * sizeof(float));
        memcpy(st->v32 + at, v, n * sizeof(float));
        for (size_t i = 0; i < n; i++) mnz += m[i] != 0.0f, vnz += v[i] != 0.0f;
      } else {
        sparq_fp8_group gm, gv;
        sparq_fp8_quantize_group(m, n, qc->m_format, qc->dre, st->m.codes + at, &gm);
        sparq_fp8_quantize_group(v, n, qc->v_format, qc->dre, st->v.codes + at, &gv);
        group_store(&st->m, gi, &gm);
        group_store(&st->v, gi, &gv);
        fp8_count_zeroed(m, st->m.codes + at, n, &mnz, &mz);
        fp8_count_zeroed(v, st->v.codes + at, n, &vnz, &vz);
      }
      v_flush += vz;
#pragma omp atomic
      q->m_nonzero += mnz;
#pragma omp atomic
      q->m_zeroed += mz;
#pragma omp atomic
      q->v_nonzero += vnz;
#pragma omp atomic
      q->v_zeroed += vz;
    }
  }
  st->last = (sparq_adamw_fp8_counters){.nan_params = nan_p, .nan_m = nan_m, .nan_v = nan_v, .v_flush = v_flush};
  st->step = t;
  if (st->shadow) st->shadow->step = t;
  return SPARQ_OK;
}

sparq_status sparq_adamw_fp8_dequantize(const sparq_adamw_fp8_state *st, size_t t, float *m, float *v) {
  if (!st || !st->tensors || t >= st->ntensors)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_adamw_fp8_dequantize: NULL state or tensor %zu out of range", t);
  const sparq_adamw_fp8_tensor *q = &st->tensors[t];
  for (size_t j = 0; j < q->ngroups; j++) {
    const size_t start = j * G, n = q->numel - start < G ? q->numel - start : G;
    const size_t at = q->code_offset + start, gi = q->group_offset + j;
    if (st->cfg.identity) {
      if (m) memcpy(m + start, st->m32 + at, n * sizeof(float));
      if (v) memcpy(v + start, st->v32 + at, n * sizeof(float));
      continue;
    }
    const sparq_fp8_group gm = group_at(&st->m, gi), gv = group_at(&st->v, gi);
    if (m) sparq_fp8_dequantize_group(st->m.codes + at, n, st->cfg.m_format, &gm, m + start);
    if (v) sparq_fp8_dequantize_group(st->v.codes + at, n, st->cfg.v_format, &gv, v + start);
  }
  return SPARQ_OK;
}
