/* FP8 activations: how the GPT stores a saved tensor, reads it back, and
 * rounds a gradient through E5M2 (gpt.h "FP8 activations").
 *
 * The num/ kernels are single-threaded; here tensors are cut into blocks of
 * whole rows shared out by OpenMP. Every element's code depends only on
 * its value and its group's (or the tensor's) scale, and a max is the same
 * in any order, so the bits do not depend on the thread count. The
 * statistics are summed serially for the same reason. */
#include <math.h>
#include <string.h>

#include "nn/gpt_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"

#define ROW_BLOCK 32
/* Below this many elements a tensor is not worth the threads (nn's rule). */
#define PAR_MIN 32768

static size_t groups_of(size_t cols) { return (cols + SPARQ_FP8_ACT_GROUP - 1) / SPARQ_FP8_ACT_GROUP; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* The max of the 1x16 group maxima of x [rows, cols] (Group Scaling: stage
 * 1 in parallel into g->fp8_gmax, stage 2 over those). */
static float group_scaled_absmax(const sparq_gpt *g, const float *x, size_t rows, size_t cols, size_t *bad) {
  const size_t ng = groups_of(cols), nb = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
  float *gmax = g->fp8_gmax;
  size_t nonfinite = 0;
#pragma omp parallel if (rows * cols >= PAR_MIN) reduction(+ : nonfinite)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < (int64_t)nb; b++) {
      size_t r0 = (size_t)b * ROW_BLOCK, nr = min_sz(ROW_BLOCK, rows - r0);
      nonfinite += sparq_fp8_scaled_group_absmax(x + r0 * cols, nr, cols, SPARQ_FP8_ACT_GROUP, gmax + r0 * ng);
    }
  }
  if (bad) *bad += nonfinite;
  return sparq_fp8_scaled_absmax_reduce(gmax, rows * ng);
}

/* One row's part of the statistics: squared error of x' = dec(q) scale
 * against x, squared reference, saturated codes (non-finite x skipped). */
typedef struct {
  double err2, ref2;
  int64_t sat;
} row_stats;

static row_stats stats_row(const float *x, const gpt_fp8_tensor *t, size_t r) {
  const size_t cols = t->cols, ng = groups_of(cols);
  row_stats o = {0, 0, 0};
  for (size_t c = 0; c < cols; c++) {
    const size_t i = r * cols + c;
    const float s = t->group ? t->scales[r * ng + c / SPARQ_FP8_ACT_GROUP] : t->scales[0];
    const float d = sparq_e4m3_to_f32(t->q[i]);
    if (!isfinite(x[i])) continue;
    const double e = (double)(d * s) - (double)x[i];
    o.err2 += e * e;
    o.ref2 += (double)x[i] * (double)x[i];
    o.sat += fabsf(d) == 448.0f;
  }
  return o;
}

/* The statistics of one saved tensor (sampled steps only). Rows run in
 * parallel into per-row sums that are then added in row order, so the
 * result does not depend on the thread count. */
static void stats_add(sparq_gpt *g, sparq_gpt_act_kind kind, const float *x, const gpt_fp8_tensor *t, size_t rows) {
  gpt_fp8_stat_acc *a = &g->fp8_stats[kind];
  row_stats *part = sparq_alloc(rows * sizeof *part, "FP8 activation statistics");
  double err2 = 0, ref2 = 0;
  int64_t sat = 0;
  if (part) {
#pragma omp parallel if (rows * t->cols >= PAR_MIN)
    {
      sparq_thread_set_ftz();
#pragma omp for schedule(static)
      for (int64_t r = 0; r < (int64_t)rows; r++) part[r] = stats_row(x, t, (size_t)r);
    }
  }
  for (size_t r = 0; r < rows; r++) {
    const row_stats o = part ? part[r] : stats_row(x, t, r); /* serial when the buffer is not to be had */
    err2 += o.err2, ref2 += o.ref2, sat += o.sat;
  }
  sparq_free(part);
  a->err2 += err2, a->ref2 += ref2, a->saturated += sat;
  a->tensors += 1, a->elements += (int64_t)(rows * t->cols);
}

void gpt_fp8_save(sparq_gpt *g, gpt_fp8_tensor *t, const float *x, size_t rows, sparq_gpt_act_kind kind) {
  const size_t cols = t->cols, ng = groups_of(cols), nb = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
  size_t bad = 0;
  if (t->group) {
#pragma omp parallel if (rows * cols >= PAR_MIN) reduction(+ : bad)
    {
      sparq_thread_set_ftz();
#pragma omp for schedule(static)
      for (int64_t b = 0; b < (int64_t)nb; b++) {
        size_t r0 = (size_t)b * ROW_BLOCK, nr = min_sz(ROW_BLOCK, rows - r0);
        bad += sparq_fp8_scaled_quantize_groups(x + r0 * cols, nr, cols, SPARQ_FP8_ACT_GROUP, SPARQ_FP8_E4M3,
                                                t->q + r0 * cols, t->scales + r0 * ng);
      }
    }
  } else {
    const float s = sparq_fp8_scaled_scale(group_scaled_absmax(g, x, rows, cols, &bad), SPARQ_FP8_E4M3);
    t->scales[0] = s;
#pragma omp parallel if (rows * cols >= PAR_MIN)
    {
      sparq_thread_set_ftz();
#pragma omp for schedule(static)
      for (int64_t b = 0; b < (int64_t)nb; b++) {
        size_t r0 = (size_t)b * ROW_BLOCK, nr = min_sz(ROW_BLOCK, rows - r0);
        sparq_fp8_scaled_quantize(x + r0 * cols, nr * cols, s, SPARQ_FP8_E4M3, t->q + r0 * cols);
      }
    }
  }
  g->fp8_nonfinite[kind] += (int64_t)bad;
  if (g->fp8_stats_on) stats_add(g, kind, x, t, rows);
}

void gpt_fp8_load(const sparq_gpt *g, float *x, const gpt_fp8_tensor *t, size_t rows) {
  (void)g;
  const size_t cols = t->cols, ng = groups_of(cols), nb = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel if (rows * cols >= PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < (int64_t)nb; b++) {
      size_t r0 = (size_t)b * ROW_BLOCK, nr = min_sz(ROW_BLOCK, rows - r0);
      if (t->group)
        sparq_fp8_scaled_dequantize_groups(t->q + r0 * cols, nr, cols, SPARQ_FP8_ACT_GROUP, t->scales + r0 * ng,
                                           SPARQ_FP8_E4M3, x + r0 * cols);
      else
        sparq_fp8_scaled_dequantize(t->q + r0 * cols, nr * cols, t->scales[0], SPARQ_FP8_E4M3, x + r0 * cols);
    }
  }
}

#define HP_BLOCK 4096

void gpt_fp8_save_hp(sparq_gpt *g, void *dst, const float *x, size_t n) {
  if (g->fp8_attn_fp32) {
    memcpy(dst, x, n * sizeof(float));
  } else {
    uint16_t *h = dst;
    const size_t nb = (n + HP_BLOCK - 1) / HP_BLOCK;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t b = 0; b < (int64_t)nb; b++) {
      size_t i0 = (size_t)b * HP_BLOCK;
      sparq_f32_to_bf16_n(x + i0, h + i0, min_sz(HP_BLOCK, n - i0));
    }
  }
  if (!g->fp8_stats_on) return;
  /* one entry for the four tensors of a block: counted as tensors below */
  gpt_fp8_stat_acc *a = &g->fp8_stats[SPARQ_GPT_ACT_QKVO];
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i])) continue;
    const float d = g->fp8_attn_fp32 ? ((const float *)dst)[i] : sparq_bf16_to_f32(((const uint16_t *)dst)[i]);
    const double e = (double)d - (double)x[i];
    err2 += e * e;
    ref2 += (double)x[i] * (double)x[i];
  }
  a->err2 += err2, a->ref2 += ref2;
  a->tensors += 1, a->elements += (int64_t)n;
}

void gpt_fp8_load_hp(const sparq_gpt *g, float *x, const void *src, size_t n) {
  if (g->fp8_attn_fp32) {
    memcpy(x, src, n * sizeof(float));
    return;
  }
  const uint16_t *h = src;
  const size_t nb = (n + HP_BLOCK - 1) / HP_BLOCK;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
  for (int64_t b = 0; b < (int64_t)nb; b++) {
    size_t i0 = (size_t)b * HP_BLOCK;
    sparq_bf16_to_f32_n(h + i0, x + i0, min_sz(HP_BLOCK, n - i0));
  }
}

float gpt_fp8_round_grads(sparq_gpt *g, float *const *x, int k, size_t rows, size_t cols) {
  if (g->fp8_grad_fp32) return 0.0f;
  float amax = 0.0f;
  for (int j = 0; j < k; j++) amax = fmaxf(amax, group_scaled_absmax(g, x[j], rows, cols, NULL));
  const float s = sparq_fp8_scaled_scale(amax, SPARQ_FP8_E5M2);
  const size_t nb = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
  for (int j = 0; j < k; j++) {
    float *xj = x[j];
#pragma omp parallel if (rows * cols >= PAR_MIN)
    {
      sparq_thread_set_ftz();
#pragma omp for schedule(static)
      for (int64_t b = 0; b < (int64_t)nb; b++) {
        size_t r0 = (size_t)b * ROW_BLOCK, nr = min_sz(ROW_BLOCK, rows - r0);
        sparq_fp8_scaled_round(xj + r0 * cols, nr * cols, s, SPARQ_FP8_E5M2);
      }
    }
  }
  return s;
}
