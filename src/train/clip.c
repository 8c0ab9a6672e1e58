/* Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_ with
 * norm_type 2).
 *
 * The squared norm is summed in double in a fixed order: every parameter is
 * cut into chunks of CLIP_CHUNK floats, each chunk's sum of squares is
 * computed by one thread with a fixed lane pattern, and the chunk sums are
 * added in chunk order. Threads only decide who computes which chunk, so the
 * norm is bit-identical for any thread count (and any ISA: a float squared
 * is exact in double and the lanes are written out, not left to the
 * compiler's reassociation). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "sparq/train.h"
#include "train/param_spans.h"

#define CLIP_CHUNK ((size_t)8192)
#define CLIP_LANES 8

static inline __attribute__((always_inline)) double sumsq_body(const float *x, size_t n) {
  double acc[CLIP_LANES] = {0};
  size_t i = 0;
  for (; i + CLIP_LANES <= n; i += CLIP_LANES)
    for (int j = 0; j < CLIP_LANES; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
  for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * (double)x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double sumsq_generic(const float *x, size_t n) { return sumsq_body(x, n); }

#ifdef SPARQ_HAVE_X86_SIMD
__attribute__((target("avx512f"))) static double sumsq_avx512(const float *x, size_t n) { return sumsq_body(x, n); }
__attribute__((target("avx2"))) static double sumsq_avx2(const float *x, size_t n) { return sumsq_body(x, n); }
#endif

typedef double (*sumsq_fn)(const float *, size_t);

static sumsq_fn sumsq_pick(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) return sumsq_avx512;
  if (isa >= SPARQ_ISA_AVX2) return sumsq_avx2;
#endif
  return sumsq_generic;
}

/* Chunk c of the list: parameter first[k] <= c < first[k + 1]. */
static double chunk_sumsq(const sparq_param_list *pl, const size_t *first, size_t c, sumsq_fn f) {
  size_t lo = 0, hi = pl->count; /* the last k with first[k] <= c */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (first[mid] <= c) lo = mid;
    else hi = mid;
  }
  const sparq_param *p = &pl->items[lo];
  const size_t start = (c - first[lo]) * CLIP_CHUNK;
  const size_t n = p->numel - start < CLIP_CHUNK ? p->numel - start : CLIP_CHUNK;
  return f(pl->grad + p->offset + start, n);
}

static double global_sumsq(const sparq_param_list *pl, sumsq_fn f) {
  size_t *first = malloc((pl->count + 1) * sizeof *first);
  size_t chunks = 0;
  for (size_t k = 0; k < pl->count; k++) {
    if (first) first[k] = chunks;
    chunks += (pl->items[k].numel + CLIP_CHUNK - 1) / CLIP_CHUNK;
  }
  double *part = first ? malloc((chunks ? chunks : 1) * sizeof *part) : NULL;
  double total = 0;
  if (!part) {
    /* no memory for the table: the same chunks in the same order, serially */
    for (size_t k = 0; k < pl->count; k++) {
      const sparq_param *p = &pl->items[k];
      for (size_t s = 0; s < p->numel; s += CLIP_CHUNK)
        total += f(pl->grad + p->offset + s, p->numel - s < CLIP_CHUNK ? p->numel - s : CLIP_CHUNK);
    }
    free(first);
    return total;
  }
  const long long nch = (long long)chunks;
#pragma omp parallel if (chunks > 4)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (long long c = 0; c < nch; c++) part[c] = chunk_sumsq(pl, first, (size_t)c, f);
  }
  for (size_t c = 0; c < chunks; c++) total += part[c];
  free(part);
  free(first);
  return total;
}

double sparq_grad_clip(sparq_param_list *pl, float max_norm) {
  if (!pl || !pl->grad || pl->count == 0) return 0.0;
  const double norm = sqrt(global_sumsq(pl, sumsq_pick()));
  if (!isfinite(norm) || !(max_norm > 0)) return norm;
  const double coef = (double)max_norm / (norm + 1e-6);
  if (!(coef < 1.0)) return norm;
  const float cf = (float)coef;
  const size_t total = pl->numel, count = pl->count;
  const sparq_param *items = pl->items;
  float *gd = pl->grad;
#pragma omp parallel if (total >= PARAM_SPANS_PARALLEL_MIN)
  {
    sparq_thread_set_ftz();
    size_t lo, hi;
    param_spans_block(total, &lo, &hi);
    for (size_t k = 0, s0, s1; param_spans_next(items, count, lo, hi, &k, &s0, &s1);)
      for (size_t i = s0; i < s1; i++) gd[i] *= cf;
  }
  return norm;
}
