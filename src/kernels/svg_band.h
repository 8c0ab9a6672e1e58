/* The Sparse VideoGen band kernel: one head's attention in its CURRENT
 * layout (frame-major for spatial heads, token-major for permuted temporal
 * heads), on flash_f32's tiles (attn_flash.h).
 *
 * Every query row's visible keys are a union of a few contiguous key
 * intervals (text, sink, band); each interval runs as one flash item over
 * packed K^T blocks with a per-row key prefix, and the per-interval
 * normalized outputs are merged exactly with their (m, l) statistics:
 *   O = sum_s w_s O_s / sum_s w_s,  w_s = l_s 2^(m_s - max_s m_s).
 * The band edges are exact (element-wise), not rounded out to blocks: the
 * keys a row sees to the LEFT of the split point c form a suffix, which the
 * kernel runs as a prefix of the keys packed in reverse order (negative V
 * stride). So the result equals the element-wise mask sparq_svg_visible
 * up to summation order, and the entries counted are exactly the mask's. */
#ifndef SPARQ_KERNELS_SVG_BAND_H
#define SPARQ_KERNELS_SVG_BAND_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/svg_internal.h"

/* One head's geometry. Layout rows: video rows [video0, video0 + Sv), text
 * rows [text0, text0 + L); all tensors [S][ld] with dp <= ld columns used. */
typedef struct svg_band_geom {
  int64_t S, L, Sv, F, P;
  int64_t video0, text0;
  int64_t wt;           /* band half-width in tokens */
  bool inclusive;       /* |i - j| <= wt instead of < wt */
  sparq_svg_sink sink;
  sparq_svg_head head;  /* SPARQ_SVG_DENSE: every row sees every key */
  int64_t dp;           /* columns, a multiple of 32 */
  bool permuted;        /* the Sage inner path of a temporal head only: q, k, v and o are in
                           FRAME-MAJOR order while the band runs token-major; the Sage
                           pre-pass gathers and the merge writes through svg_band_src_row,
                           so the layout needs no copies */
} svg_band_geom;

/* The row of the given tensors that holds row i of the head's current
 * layout (i itself unless g->permuted; svg_tm_to_fm on the video rows). */
static inline int64_t svg_band_src_row(const svg_band_geom *g, int64_t i) {
  if (!g->permuted || i < g->video0 || i >= g->video0 + g->Sv) return i;
  return g->video0 + svg_tm_to_fm(g->F, g->P, i - g->video0);
}

/* The geometry of head type `head` on a checked svg_geom, dp columns. */
svg_band_geom svg_band_geom_make(const svg_geom *g, sparq_svg_head head, int64_t dp);

/* Floats of scratch one thread needs for svg_band_head. */
size_t svg_band_scratch_floats(const svg_band_geom *g);

/* O of one head: q, k, v, o are [S][ld] (ld >= dp) in the head's layout;
 * sm_scale the softmax scale. scratch: svg_band_scratch_floats floats,
 * 64-byte aligned. Returns the number of score entries the mask keeps
 * (what the kernel computes, edge tiles' masked lanes aside). Each row's
 * result depends on that row alone. */
int64_t svg_band_head(const svg_band_geom *g, const float *q, const float *k, const float *v, float *o, int64_t ld,
                      float sm_scale, float *scratch);

/* svg_band_head with the intervals run by the Sage inner path when sage is
 * not NULL (svg_sage.h; svg_sage_prepare of this head done, ld == dp); the
 * same intervals, merge and returned count. NULL: svg_band_head itself. */
struct svg_sage_head;
int64_t svg_band_head_inner(const svg_band_geom *g, const float *q, const float *k, const float *v, float *o,
                            int64_t ld, float sm_scale, float *scratch, struct svg_sage_head *sage);

/* Part `part` of `parts` of svg_band_head_inner: the query blocks with
 * index in [blocks part / parts, blocks (part + 1) / parts) (text blocks
 * first), so several threads can share a head; returns that part's kept
 * entries. Rows do not depend on each other, so any split gives the same
 * bits. */
int64_t svg_band_head_part(const svg_band_geom *g, const float *q, const float *k, const float *v, float *o,
                           int64_t ld, float sm_scale, float *scratch, struct svg_sage_head *sage, int64_t part,
                           int64_t parts);

#endif
