/* sparq_attention's front end: checks the arguments once, normalizes the
 * inputs to the attn_problem form (FP32, HND, head dim padded to a multiple of
 * 32), runs the chosen variant and converts O back to the caller's layout.
 * Kernels never see a dtype, a layout or an unpadded head dim; the one
 * exception is flash_f32 on FP32 tensors whose head dim needs no padding,
 * which reads and writes the caller's tensors in place through strides
 * (attn_problem.sq/sk), so the training shapes pay no copies. */
#include <math.h>
#include <string.h>

#include "kernels/attn_fp32.h"
#include "sparq/base.h"
#include "sparq/num.h"

sparq_attn_options sparq_attn_options_default(void) {
  sparq_attn_options o;
  memset(&o, 0, sizeof o);
  o.variant = SPARQ_ATTN_FLASH_F32;
  o.layout = SPARQ_ATTN_HND;
  o.dtype = SPARQ_F32;
  o.granularity = SPARQ_ATTN_GRAN_DEFAULT;
  o.pv_accum = SPARQ_ATTN_PV_DEFAULT;
  o.smooth_k = o.smooth_q = o.smooth_v = o.refine_k = SPARQ_ATTN_AUTO;
  return o;
}

/* ------------------------------------------------------------------ names */

static const char *const variant_names[SPARQ_ATTN_VARIANT_COUNT] = {"ref_f64",  "flash_f32", "sage1",
                                                                    "sage2_8b", "sage2_4b",  "sage_cpu"};
static const char *const granularity_names[] = {"default", "per_thread", "per_warp", "per_block", "per_token"};
static const char *const pv_accum_names[] = {"default", "f32", "f22", "f22+f32", "f16+f32", "bf16+f32", "u8"};
enum {
  GRANULARITY_COUNT = sizeof granularity_names / sizeof granularity_names[0],
  PV_ACCUM_COUNT = sizeof pv_accum_names / sizeof pv_accum_names[0]
};

static int find_name(const char *const *names, int count, const char *name) {
  if (!name) return -1;
  for (int i = 0; i < count; i++)
    if (!strcmp(names[i], name)) return i;
  return -1;
}

const char *sparq_attn_variant_name(sparq_attn_variant v) {
  return (int)v >= 0 && (int)v < SPARQ_ATTN_VARIANT_COUNT ? variant_names[v] : "?";
}
bool sparq_attn_variant_from_name(const char *name, sparq_attn_variant *out) {
  int i = find_name(variant_names, SPARQ_ATTN_VARIANT_COUNT, name);
  if (i < 0 || !out) return false;
  *out = (sparq_attn_variant)i;
  return true;
}
const char *sparq_attn_granularity_name(sparq_attn_granularity g) {
  return (int)g >= 0 && (int)g < GRANULARITY_COUNT ? granularity_names[g] : "?";
}
bool sparq_attn_granularity_from_name(const char *name, sparq_attn_granularity *out) {
  int i = find_name(granularity_names, GRANULARITY_COUNT, name);
  if (i < 0 || !out) return false;
  *out = (sparq_attn_granularity)i;
  return true;
}
const char *sparq_attn_pv_accum_name(sparq_attn_pv_accum a) {
  return (int)a >= 0 && (int)a < PV_ACCUM_COUNT ? pv_accum_names[a] : "?";
}
bool sparq_attn_pv_accum_from_name(const char *name, sparq_attn_pv_accum *out) {
  int i = find_name(pv_accum_names, PV_ACCUM_COUNT, name);
  if (i < 0 || !out) return false;
  *out = (sparq_attn_pv_accum)i;
  return true;
}

/* ------------------------------------------------------------ arguments */

/* Byte ranges [a, a + na) and [b, b + nb) overlap. */
static bool overlaps(const void *a, size_t na, const void *b, size_t nb) {
  if (!a || !b || !na || !nb) return false;
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + nb && y < x + na;
}

static bool is_switch(sparq_attn_switch s) {
  return s == SPARQ_ATTN_AUTO || s == SPARQ_ATTN_OFF || s == SPARQ_ATTN_ON;
}

/* Element counts of Q (= O), K (= V) and the LSE; false on overflow. */
static bool element_counts(const sparq_attn_shape *s, size_t *nq, size_t *nk, size_t *nl) {
  size_t rows_q, rows_k;
  return sparq_size_mul((size_t)s->batch, (size_t)s->q_heads, &rows_q) &&
         sparq_size_mul(rows_q, (size_t)s->q_len, nl) && sparq_size_mul(*nl, (size_t)s->head_dim, nq) &&
         sparq_size_mul((size_t)s->batch, (size_t)s->kv_heads, &rows_k) &&
         sparq_size_mul(rows_k, (size_t)s->kv_len, &rows_k) && sparq_size_mul(rows_k, (size_t)s->head_dim, nk) &&
         /* the padded copies and the kernels' int64 index arithmetic must fit too */
         *nq < ((size_t)1 << 52) / ATTN_DIM_ALIGN && *nk < ((size_t)1 << 52) / ATTN_DIM_ALIGN;
}

/* Everything the kernels rely on, checked once with a message naming the
 * offending value. `fn` names the public entry point. */
static sparq_status check_shape_and_options(const char *fn, const sparq_attn_shape *s,
                                            const sparq_attn_options *o) {
  if (!s) return sparq_fail(SPARQ_ERR_ARG, "%s: shape is NULL", fn);
  if (!o) return sparq_fail(SPARQ_ERR_ARG, "%s: opts is NULL (use sparq_attn_options_default())", fn);
  const struct {
    const char *name;
    int64_t value;
  } sizes[] = {{"batch", s->batch},     {"q_heads", s->q_heads}, {"kv_heads", s->kv_heads},
               {"q_len", s->q_len},     {"kv_len", s->kv_len},   {"head_dim", s->head_dim}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (sizes[i].value < 1)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s %lld must be >= 1", fn, sizes[i].name, (long long)sizes[i].value);
  if (s->head_dim > ATTN_MAX_DIM)
    return sparq_fail(SPARQ_ERR_ARG, "%s: head_dim %lld is larger than 256", fn, (long long)s->head_dim);
  if (s->q_heads % s->kv_heads)
    return sparq_fail(SPARQ_ERR_ARG, "%s: q_heads %lld is not a multiple of kv_heads %lld (grouped-query attention)",
                      fn, (long long)s->q_heads, (long long)s->kv_heads);
  size_t nq, nk, nl;
  if (!element_counts(s, &nq, &nk, &nl)) return sparq_fail(SPARQ_ERR_ARG, "%s: the tensor sizes overflow", fn);
  if ((int)o->variant < 0 || o->variant >= SPARQ_ATTN_VARIANT_COUNT)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown variant %d", fn, (int)o->variant);
  if (o->layout != SPARQ_ATTN_HND && o->layout != SPARQ_ATTN_NHD)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown layout %d (HND or NHD)", fn, (int)o->layout);
  if (o->dtype != SPARQ_F32 && o->dtype != SPARQ_F16 && o->dtype != SPARQ_BF16)
    return sparq_fail(SPARQ_ERR_ARG, "%s: dtype %s is not supported for Q, K, V (F32, F16 or BF16)", fn,
                      (int)o->dtype >= 0 && o->dtype < SPARQ_DTYPE_COUNT ? sparq_dtype_name(o->dtype) : "?");
  if (!isfinite(o->sm_scale) || o->sm_scale < 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: sm_scale %g must be finite and positive (0 = 1/sqrt(head_dim))", fn,
                      (double)o->sm_scale);
  if (o->causal && s->q_len != s->kv_len && !o->has_causal_offset)
    return sparq_fail(SPARQ_ERR_ARG,
                      "%s: causal attention with q_len %lld != kv_len %lld needs an explicit diagonal: set "
                      "has_causal_offset and causal_offset (0 = top-left aligned, %lld = bottom-right)",
                      fn, (long long)s->q_len, (long long)s->kv_len, (long long)(s->kv_len - s->q_len));
  if ((int)o->granularity < 0 || (int)o->granularity >= GRANULARITY_COUNT)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown granularity %d", fn, (int)o->granularity);
  if ((int)o->pv_accum < 0 || (int)o->pv_accum >= PV_ACCUM_COUNT)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown pv_accum %d", fn, (int)o->pv_accum);
  if (!is_switch(o->smooth_k) || !is_switch(o->smooth_q) || !is_switch(o->smooth_v) || !is_switch(o->refine_k))
    return sparq_fail(SPARQ_ERR_ARG, "%s: smooth_k/smooth_q/smooth_v/refine_k must be AUTO (-1), OFF (0) or ON (1)",
                      fn);
  if (o->refine_k == SPARQ_ATTN_ON && o->variant != SPARQ_ATTN_SAGE_CPU)
    return sparq_fail(SPARQ_ERR_ARG, "%s: refine_k applies to sage_cpu only, not to %s", fn,
                      sparq_attn_variant_name(o->variant));
  /* The quantization knobs mean nothing to the FP32 kernels; accepting them
   * silently would let a caller believe they had an effect. */
  if (o->variant == SPARQ_ATTN_REF_F64 || o->variant == SPARQ_ATTN_FLASH_F32) {
    const char *knob = o->granularity != SPARQ_ATTN_GRAN_DEFAULT ? "granularity"
                       : o->pv_accum != SPARQ_ATTN_PV_DEFAULT     ? "pv_accum"
                       : o->smooth_k != SPARQ_ATTN_AUTO           ? "smooth_k"
                       : o->smooth_q != SPARQ_ATTN_AUTO           ? "smooth_q"
                       : o->smooth_v != SPARQ_ATTN_AUTO           ? "smooth_v"
                       : o->refine_k != SPARQ_ATTN_AUTO           ? "refine_k"
                       : o->dump_dir                              ? "dump_dir"
                                                                  : NULL;
    if (knob)
      return sparq_fail(SPARQ_ERR_ARG, "%s: %s applies to the Sage variants only, not to %s", fn, knob,
                        sparq_attn_variant_name(o->variant));
  }
  return SPARQ_OK;
}

/* ---------------------------------------------------------- normalization */

static int64_t padded_dim(int64_t d) { return (d + ATTN_DIM_ALIGN - 1) / ATTN_DIM_ALIGN * ATTN_DIM_ALIGN; }

/* Offset of row (b, h, n) of a [.., d] tensor in the caller's layout. */
static size_t row_offset(sparq_attn_layout layout, int64_t heads, int64_t len, int64_t d, int64_t b, int64_t h,
                         int64_t n) {
  if (layout == SPARQ_ATTN_HND) return (size_t)(((b * heads + h) * len + n) * d);
  return (size_t)(((b * len + n) * heads + h) * d);
}

static void convert_row(const void *src, sparq_dtype dtype, size_t offset, int64_t d, float *dst) {
  if (dtype == SPARQ_F32) memcpy(dst, (const float *)src + offset, (size_t)d * sizeof(float));
  else if (dtype == SPARQ_F16) sparq_f16_to_f32_n((const uint16_t *)src + offset, dst, (size_t)d);
  else sparq_bf16_to_f32_n((const uint16_t *)src + offset, dst, (size_t)d);
}

/* A caller tensor in the kernels' form: *out points either at the caller's
 * own data (FP32, HND, d already a multiple of 32: no copy) or at *owned. */
static sparq_status normalize(const char *what, const void *src, const sparq_attn_options *o, int64_t batch,
                              int64_t heads, int64_t len, int64_t d, int64_t dp, const float **out, float **owned) {
  *owned = NULL;
  if (o->dtype == SPARQ_F32 && o->layout == SPARQ_ATTN_HND && d == dp) {
    *out = src;
    return SPARQ_OK;
  }
  const int64_t rows = batch * heads * len;
  float *dst = sparq_alloc((size_t)(rows * dp) * sizeof(float), what);
  if (!dst) return SPARQ_ERR_NOMEM;
#pragma omp parallel
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      int64_t n = r % len, h = (r / len) % heads, b = r / (len * heads);
      float *row = dst + r * dp;
      convert_row(src, o->dtype, row_offset(o->layout, heads, len, d, b, h, n), d, row);
      memset(row + d, 0, (size_t)(dp - d) * sizeof(float));
    }
  }
  *out = dst;
  *owned = dst;
  return SPARQ_OK;
}

/* Copies the kernels' padded HND rows into a caller FP32 tensor. */
static void denormalize(const float *src, const sparq_attn_shape *s, sparq_attn_layout layout, int64_t heads,
                        int64_t len, int64_t dp, float *dst) {
  const int64_t rows = s->batch * heads * len, d = s->head_dim;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t n = r % len, h = (r / len) % heads, b = r / (len * heads);
    memcpy(dst + row_offset(layout, heads, len, d, b, h, n), src + r * dp, (size_t)d * sizeof(float));
  }
}

static void problem_init(attn_problem *p, const sparq_attn_shape *s, const sparq_attn_options *o) {
  memset(p, 0, sizeof *p);
  p->batch = s->batch, p->q_heads = s->q_heads, p->kv_heads = s->kv_heads;
  p->q_len = s->q_len, p->kv_len = s->kv_len, p->head_dim = s->head_dim;
  p->dp = padded_dim(s->head_dim);
  p->scale = o->sm_scale > 0 ? o->sm_scale : (float)(1.0 / sqrt((double)s->head_dim));
  p->causal = o->causal;
  /* Offsets past either end behave like the end itself (every key visible,
   * or none), so clamping keeps i + offset far from int64 overflow. */
  int64_t off = o->causal && o->has_causal_offset ? o->causal_offset : 0;
  if (off > s->kv_len) off = s->kv_len;
  if (off < -s->q_len) off = -s->q_len;
  p->causal_offset = off;
  p->opts = o;
}

/* Strides of the caller's own tensors (head_dim == dp) for flash_f32. */
static void caller_strides(attn_problem *p, const sparq_attn_shape *s, sparq_attn_layout layout) {
  const int64_t d = s->head_dim;
  if (layout == SPARQ_ATTN_HND) {
    p->sq = (attn_strides){s->q_heads * s->q_len * d, s->q_len * d, d};
    p->sk = (attn_strides){s->kv_heads * s->kv_len * d, s->kv_len * d, d};
  } else {
    p->sq = (attn_strides){s->q_len * s->q_heads * d, d, s->q_heads * d};
    p->sk = (attn_strides){s->kv_len * s->kv_heads * d, d, s->kv_heads * d};
  }
}

typedef sparq_status (*attn_kernel)(const attn_problem *p);

static attn_kernel variant_kernel(sparq_attn_variant v) {
  switch (v) {
    case SPARQ_ATTN_REF_F64: return attn_forward_ref_f64;
    case SPARQ_ATTN_FLASH_F32: return attn_forward_flash_f32;
    default: return attn_forward_sage;
  }
}

/* The forward path shared by sparq_attention and the three-pass baseline. */
static sparq_status run_forward(const char *fn, const void *q, const void *k, const void *v, float *o,
                                const sparq_attn_shape *s, const sparq_attn_options *opts, attn_kernel kernel) {
  sparq_status st = check_shape_and_options(fn, s, opts);
  if (st != SPARQ_OK) return st;
  if (!q || !k || !v || !o) return sparq_fail(SPARQ_ERR_ARG, "%s: q, k, v and o must not be NULL", fn);
  size_t nq, nk, nl;
  element_counts(s, &nq, &nk, &nl);
  const size_t es = sparq_dtype_size(opts->dtype), ob = nq * sizeof(float);
  if (overlaps(o, ob, q, nq * es) || overlaps(o, ob, k, nk * es) || overlaps(o, ob, v, nk * es))
    return sparq_fail(SPARQ_ERR_ARG, "%s: o overlaps q, k or v (the inputs are never modified)", fn);
  if (opts->lse && (overlaps(opts->lse, nl * sizeof(float), o, ob) ||
                    overlaps(opts->lse, nl * sizeof(float), q, nq * es) ||
                    overlaps(opts->lse, nl * sizeof(float), k, nk * es) ||
                    overlaps(opts->lse, nl * sizeof(float), v, nk * es)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: lse overlaps o, q, k or v", fn);

  attn_problem p;
  problem_init(&p, s, opts);
  p.lse = opts->lse;
  float *qo = NULL, *ko = NULL, *vo = NULL, *oo = NULL;
  if (kernel == attn_forward_flash_f32 && opts->dtype == SPARQ_F32 && s->head_dim == p.dp) {
    /* flash_f32 reads the caller's tensors in place, whatever the layout */
    caller_strides(&p, s, opts->layout);
    p.q = q, p.k = k, p.v = v, p.o = o;
    return kernel(&p);
  }
  if ((st = normalize("attention Q (FP32, padded)", q, opts, s->batch, s->q_heads, s->q_len, s->head_dim, p.dp,
                      &p.q, &qo)) != SPARQ_OK ||
      (st = normalize("attention K (FP32, padded)", k, opts, s->batch, s->kv_heads, s->kv_len, s->head_dim, p.dp,
                      &p.k, &ko)) != SPARQ_OK ||
      (st = normalize("attention V (FP32, padded)", v, opts, s->batch, s->kv_heads, s->kv_len, s->head_dim, p.dp,
                      &p.v, &vo)) != SPARQ_OK)
    goto done;
  const bool direct_o = opts->layout == SPARQ_ATTN_HND && s->head_dim == p.dp;
  if (direct_o) {
    p.o = o;
  } else {
    oo = sparq_alloc(nl * (size_t)p.dp * sizeof(float), "attention O (FP32, padded)");
    if (!oo) {
      st = SPARQ_ERR_NOMEM;
      goto done;
    }
    p.o = oo;
  }
  st = kernel(&p);
  if (st == SPARQ_OK && !direct_o) denormalize(oo, s, opts->layout, s->q_heads, s->q_len, p.dp, o);
done:
  sparq_free(qo);
  sparq_free(ko);
  sparq_free(vo);
  sparq_free(oo);
  return st;
}

sparq_status sparq_attention(const void *q, const void *k, const void *v, float *o, const sparq_attn_shape *shape,
                             const sparq_attn_options *opts) {
  /* run_forward checks opts before the kernel runs; an unknown variant never gets there */
  return run_forward("sparq_attention", q, k, v, o, shape, opts, opts ? variant_kernel(opts->variant) : NULL);
}

sparq_status sparq_attention_threepass(const void *q, const void *k, const void *v, float *o,
                                       const sparq_attn_shape *shape, const sparq_attn_options *opts) {
  const char *fn = "sparq_attention_threepass";
  sparq_status st = check_shape_and_options(fn, shape, opts);
  if (st != SPARQ_OK) return st;
  if (opts->variant != SPARQ_ATTN_FLASH_F32)
    return sparq_fail(SPARQ_ERR_ARG, "%s: variant must be flash_f32 (the baseline is FP32), got %s", fn,
                      sparq_attn_variant_name(opts->variant));
  return run_forward(fn, q, k, v, o, shape, opts, attn_forward_threepass);
}

/* ---------------------------------------------------------------- backward */

sparq_status sparq_attention_backward(const float *q, const float *k, const float *v, const float *o,
                                      const float *lse, const float *dout, float *dq, float *dk, float *dv,
                                      const sparq_attn_shape *s, const sparq_attn_options *opts) {
  const char *fn = "sparq_attention_backward";
  sparq_status st = check_shape_and_options(fn, s, opts);
  if (st != SPARQ_OK) return st;
  if (opts->variant != SPARQ_ATTN_REF_F64 && opts->variant != SPARQ_ATTN_FLASH_F32)
    return sparq_fail(SPARQ_ERR_ARG, "%s: variant %s has no backward (ref_f64 or flash_f32)", fn,
                      sparq_attn_variant_name(opts->variant));
  if (opts->dtype != SPARQ_F32)
    return sparq_fail(SPARQ_ERR_ARG, "%s: dtype %s: the backward takes FP32 tensors", fn,
                      sparq_dtype_name(opts->dtype));
  if (!q || !k || !v || !o || !lse || !dout || !dq || !dk || !dv)
    return sparq_fail(SPARQ_ERR_ARG, "%s: q, k, v, o, lse, dout, dq, dk and dv must not be NULL", fn);
  size_t nq, nk, nl;
  element_counts(s, &nq, &nk, &nl);
  const size_t bq = nq * sizeof(float), bk = nk * sizeof(float), bl = nl * sizeof(float);
  const void *ins[] = {q, k, v, o, lse, dout};
  const size_t in_bytes[] = {bq, bk, bk, bq, bl, bq};
  float *outs[] = {dq, dk, dv};
  const size_t out_bytes[] = {bq, bk, bk};
  for (int a = 0; a < 3; a++) {
    for (int b = 0; b < 6; b++)
      if (overlaps(outs[a], out_bytes[a], ins[b], in_bytes[b]))
        return sparq_fail(SPARQ_ERR_ARG, "%s: %s overlaps an input (the inputs are never modified)", fn,
                          a == 0 ? "dq" : a == 1 ? "dk" : "dv");
    for (int b = a + 1; b < 3; b++)
      if (overlaps(outs[a], out_bytes[a], outs[b], out_bytes[b]))
        return sparq_fail(SPARQ_ERR_ARG, "%s: dq, dk and dv must not overlap", fn);
  }

  attn_grad g;
  memset(&g, 0, sizeof g);
  problem_init(&g.p, s, opts);
  g.lse = lse;
  if (opts->variant == SPARQ_ATTN_FLASH_F32 && s->head_dim == g.p.dp) {
    /* flash_f32 reads and writes the caller's tensors in place, whatever the layout */
    caller_strides(&g.p, s, opts->layout);
    g.p.q = q, g.p.k = k, g.p.v = v, g.o = o, g.dout = dout, g.dq = dq, g.dk = dk, g.dv = dv;
    return attn_backward_flash_f32(&g);
  }
  float *owned[8] = {NULL};
  const float **norm_in[] = {&g.p.q, &g.p.k, &g.p.v, &g.o, &g.dout};
  const float *raw_in[] = {q, k, v, o, dout};
  const int64_t heads[] = {s->q_heads, s->kv_heads, s->kv_heads, s->q_heads, s->q_heads};
  const int64_t lens[] = {s->q_len, s->kv_len, s->kv_len, s->q_len, s->q_len};
  for (int i = 0; i < 5 && st == SPARQ_OK; i++)
    st = normalize("attention backward input (FP32, padded)", raw_in[i], opts, s->batch, heads[i], lens[i],
                   s->head_dim, g.p.dp, norm_in[i], &owned[i]);
  /* Gradients go straight to the caller when the layout already matches. */
  const bool direct = opts->layout == SPARQ_ATTN_HND && s->head_dim == g.p.dp;
  float **grads[] = {&g.dq, &g.dk, &g.dv};
  float *user[] = {dq, dk, dv};
  const size_t grad_rows[] = {nl, nk / (size_t)s->head_dim, nk / (size_t)s->head_dim};
  for (int i = 0; i < 3 && st == SPARQ_OK; i++) {
    if (direct) {
      *grads[i] = user[i];
      continue;
    }
    owned[5 + i] = sparq_alloc(grad_rows[i] * (size_t)g.p.dp * sizeof(float), "attention gradient (padded)");
    if (!owned[5 + i]) st = SPARQ_ERR_NOMEM;
    *grads[i] = owned[5 + i];
  }
  if (st == SPARQ_OK)
    st = opts->variant == SPARQ_ATTN_REF_F64 ? attn_backward_ref_f64(&g) : attn_backward_flash_f32(&g);
  if (st == SPARQ_OK && !direct) {
    denormalize(g.dq, s, opts->layout, s->q_heads, s->q_len, g.p.dp, dq);
    denormalize(g.dk, s, opts->layout, s->kv_heads, s->kv_len, g.p.dp, dk);
    denormalize(g.dv, s, opts->layout, s->kv_heads, s->kv_len, g.p.dp, dv);
  }
  for (int i = 0; i < 8; i++) sparq_free(owned[i]);
  return st;
}
