/* Pieces shared by the Sparse VideoGen sources (spec
 * shared/spec/sparse-videogen.md, contract include/sparq/svg.h): option
 * checks, the sequence geometry, index maps between the two video orders,
 * the visible key set of one query as a few contiguous intervals (what the
 * band kernel iterates over), online profiling of one head and the FP64
 * masked reference the kernel is tested against.
 *
 * Layouts. A head holds S = L + F P rows. Video rows occupy [voff, voff + Sv)
 * with Sv = F P (voff = L for text first, 0 otherwise); text rows occupy
 * [t0, t1) (L rows; empty when L = 0). Inside the video block a row sits at
 *   frame-major index v = f P + p  (the model's order, the API's order), or
 *   token-major index u = p F + f  (after sparq_svg_permute, temporal heads).
 * The "current layout" of a head is the order its kernel runs in: frame-major
 * for spatial and dense heads, token-major for temporal heads. Text rows never
 * move.
 *
 * The band in the current layout. A spatial head keeps |v_i - v_j| < Wt, a
 * temporal head |u_i - u_j| < Wt (<= for inclusive_width). In each head's
 * current layout both are the same diagonal band on the current video index
 * x: |x_i - x_j| < Wt. So for a temporal head, visibility in permuted
 * coordinates is the spatial predicate applied to the permuted indices, with
 * the sink taken in that layout too: SINK_PARITY (x_j < P) is then literally
 * the spatial predicate on permuted indices; SINK_FRAME0 is not (frame 0 is
 * every F-th row u = p F after the permutation), which is why svg_keys
 * reports it as a separate gathered segment. */
#ifndef SPARQ_KERNELS_SVG_INTERNAL_H
#define SPARQ_KERNELS_SVG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/svg.h"

/* The reference profiles rows drawn from the first 10000 queries only. */
enum { SVG_PROFILE_MAX_ROW = 10000 };

/* Checks every field of opts (NULL included) and records a message that
 * starts with `where` and names the field ("sparq_svg_attention: frames 0
 * must be >= 1"): F, P >= 1; L >= 0; L = 0 iff text NONE; text, sink, inner
 * known (inner flash_f32 or sage_cpu); budget in (0, 1]; block >= 1;
 * profile_rows >= 1; S = L + F P and S * S fit in int64. `force` is not
 * checked here (its length is B H, unknown to the options). */
sparq_status svg_check_options(const sparq_svg_options *opts, const char *where);

/* One head's sequence geometry with the band width resolved. */
typedef struct svg_geom {
  int64_t F, P, L;
  int64_t S, Sv;      /* all rows; video rows F P */
  int64_t voff;       /* first video row */
  int64_t t0, t1;     /* text rows [t0, t1) */
  int64_t wt;         /* band half-width, clamped to [0, S] */
  bool inclusive;     /* |x_i - x_j| <= wt instead of < */
  sparq_svg_sink sink;
} svg_geom;

/* Checks opts (messages start with `where`) and fills g. wt < 0 means
 * "from the options": sparq_svg_band_width(S, L, budget, block,
 * inclusive_width); otherwise wt is used as given (clamped to S). */
sparq_status svg_geom_make(const sparq_svg_options *opts, int64_t wt, const char *where, svg_geom *g);

/* First video row for a text placement: L for text first, else 0. */
static inline int64_t svg_video_offset(sparq_svg_text text, int64_t L) { return text == SPARQ_SVG_TEXT_FIRST ? L : 0; }

/* Frame-major <-> token-major video indices (0 <= v, u < F P). */
static inline int64_t svg_fm_to_tm(int64_t F, int64_t P, int64_t v) { return (v % P) * F + v / P; }
static inline int64_t svg_tm_to_fm(int64_t F, int64_t P, int64_t u) { return (u % F) * P + u / F; }

static inline bool svg_is_text(const svg_geom *g, int64_t i) { return i >= g->t0 && i < g->t1; }

/* Sequence row i (frame-major order) -> its row in the current layout of
 * `head`, and back. Text rows and non-temporal heads map to themselves. */
static inline int64_t svg_to_current(const svg_geom *g, sparq_svg_head head, int64_t i) {
  if (head != SPARQ_SVG_TEMPORAL || svg_is_text(g, i)) return i;
  return g->voff + svg_fm_to_tm(g->F, g->P, i - g->voff);
}
static inline int64_t svg_from_current(const svg_geom *g, sparq_svg_head head, int64_t i) {
  if (head != SPARQ_SVG_TEMPORAL || svg_is_text(g, i)) return i;
  return g->voff + svg_tm_to_fm(g->F, g->P, i - g->voff);
}

/* |x_i - x_j| inside the band (x = current video index). */
static inline bool svg_in_band(const svg_geom *g, int64_t xi, int64_t xj) {
  const int64_t dx = xi > xj ? xi - xj : xj - xi;
  return g->inclusive ? dx <= g->wt : dx < g->wt;
}

/* sparq_svg_visible on a checked geometry, both rows in FRAME-MAJOR order
 * (0 <= i, j < S assumed). */
static inline bool svg_geom_visible(const svg_geom *g, sparq_svg_head head, int64_t i, int64_t j) {
  if (head == SPARQ_SVG_DENSE || svg_is_text(g, i) || svg_is_text(g, j)) return true;
  const int64_t vi = i - g->voff, vj = j - g->voff;
  if (head == SPARQ_SVG_TEMPORAL) {
    const int64_t ui = svg_fm_to_tm(g->F, g->P, vi), uj = svg_fm_to_tm(g->F, g->P, vj);
    if (svg_in_band(g, ui, uj)) return true;
    return (g->sink == SPARQ_SVG_SINK_PARITY && uj < g->P) || (g->sink == SPARQ_SVG_SINK_FRAME0 && vj < g->P);
  }
  if (svg_in_band(g, vi, vj)) return true;
  return g->sink != SPARQ_SVG_SINK_OFF && vj < g->P;
}

/* ------------------------------------------------------------ key sets */

/* Half-open row range [a, b). */
typedef struct svg_interval {
  int64_t a, b;
} svg_interval;

/* The keys one query row sees, in the head's CURRENT layout.
 *   seg[0 .. nseg): at most 3 rows ranges of the current layout (text, band,
 *     sink), sorted, disjoint and not touching (touching ranges are merged),
 *     all non-empty.
 *   f0[0 .. nf0): only for a temporal head with SINK_FRAME0 (nf0 = 0
 *     otherwise): the frame-0 keys not already inside seg, as ranges of the
 *     raster position p in [0, P), at most 2. Frame-0 key p sits at row
 *     voff + p F of the permuted layout and at row voff + p of the original
 *     (frame-major) one, so the kernel gathers rows [voff, voff + P) of the
 *     un-permuted K and V once per head and runs f0 over that block.
 * Every visible key is in exactly one of them, and nothing else is. */
typedef struct svg_keys {
  svg_interval seg[3];
  int nseg;
  svg_interval f0[2];
  int nf0;
} svg_keys;

/* Fills *keys for query row i (0 <= i < S) of the current layout of `head`. */
void svg_keys_of(const svg_geom *g, sparq_svg_head head, int64_t i, svg_keys *keys);

/* Number of keys in *keys. */
static inline int64_t svg_keys_count(const svg_keys *keys) {
  int64_t n = 0;
  for (int s = 0; s < keys->nseg; s++) n += keys->seg[s].b - keys->seg[s].a;
  for (int s = 0; s < keys->nf0; s++) n += keys->f0[s].b - keys->f0[s].a;
  return n;
}

/* Visible (query, key) pairs of one head: the numerator of the mask density
 * (divide by S^2). O(S). */
int64_t svg_visible_pairs(const svg_geom *g, sparq_svg_head head);

/* ----------------------------------------------------------- profiling */

typedef struct svg_profile_result {
  sparq_svg_head head;             /* SPATIAL unless err_temporal < err_spatial */
  double err_spatial, err_temporal; /* mean over sampled rows and d of (O_m - O_full)^2 */
} svg_profile_result;

/* Floats of scratch svg_profile needs for t = opts->profile_rows rows:
 * about 4.25 S t + 3 t d + 8 t (1.1 MiB at S 2048, t 32, d 64); 0 when
 * the size overflows or an argument is < 1. */
size_t svg_profile_scratch_floats(const svg_geom *g, int64_t t, int64_t d);

/* Online profiling of one head (spec §3), serial, on its FRAME-MAJOR rows
 * q, k, v [S, d] (row stride d): draws t = opts->profile_rows query rows
 * uniformly with replacement from [0, min(S, 10000)) with the Philox stream
 * (opts->seed, stream) (the caller passes stream = b H + h), computes their
 * scores against all S keys once (sm_scale; 0 means 1/sqrt(d)), the full
 * output and the outputs under the spatial and temporal masks of g (sink
 * included; a row whose mask is empty gives 0), and picks the mask with the
 * smaller mean squared error (tie => spatial). FP32 scores and outputs,
 * FP64 error sums; the result is bit-identical for any ISA and thread
 * count (given the same flush-to-zero state). opts supplies seed and
 * profile_rows and must be the options g was made from. `scratch` holds
 * svg_profile_scratch_floats() floats, or is NULL to allocate. Fails only
 * on bad arguments or when scratch cannot be allocated. Cost: t S d
 * multiply-adds for the scores and about t S d (1 + 2 rho) for the three
 * outputs; 0.39 ms at S 2048, t 32, d 64 on one AVX-512 core (dense
 * flash_f32 attention of that head: about 10.6 ms). */
sparq_status svg_profile(const sparq_svg_options *opts, const svg_geom *g, const float *q, const float *k,
                         const float *v, int64_t d, float sm_scale, uint64_t stream, float *scratch,
                         svg_profile_result *out);

/* ----------------------------------------------------------- reference */

/* FP64 masked attention of one head, rows in FRAME-MAJOR order: q, k, v, o
 * [S, d] (row stride d), o_i = sum_j softmax_j(sm_scale q_i . k_j) v_j over the
 * keys j with sparq_svg_visible(opts, head, wt, i, j) (wt < 0: from the
 * options; sm_scale 0: 1/sqrt(d)). A row that sees no key gets 0. lse
 * (optional, [S]) gets the natural-log softmax denominator including
 * sm_scale, -inf for an empty row. O(S^2 d): for tests, S up to a few
 * thousand. */
sparq_status svg_attention_ref(const sparq_svg_options *opts, sparq_svg_head head, int64_t wt, const float *q,
                               const float *k, const float *v, float *o, double *lse, int64_t d, double sm_scale);

#endif
