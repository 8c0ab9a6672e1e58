/* Sparse VideoGen (SVG1; spec shared/spec/sparse-videogen.md): per-head
 * spatial or temporal sparse attention for video transformers, chosen by
 * online profiling, with the frame-major -> token-major layout transform
 * that turns a temporal head into the same diagonal band as a spatial one.
 *
 * Sequence layout (S = L + F P tokens per head):
 *   video token (f, p), frame f in [0, F), raster position p in [0, P);
 *   frame-major index v = f P + p (the model's order), token-major u = p F + f;
 *   L text tokens placed first ([text; video]), last ([video; text]) or absent.
 * Tensors are [B, H, S, d] FP32 row-major (HND), video tokens frame-major. */
#ifndef SPARQ_SVG_H
#define SPARQ_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/attention.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_svg_text {
  SPARQ_SVG_TEXT_NONE = 0,  /* L must be 0 (Wan) */
  SPARQ_SVG_TEXT_FIRST = 1, /* [text; video] (CogVideoX) */
  SPARQ_SVG_TEXT_LAST = 2   /* [video; text] (HunyuanVideo) */
} sparq_svg_text;

typedef enum sparq_svg_sink {
  SPARQ_SVG_SINK_OFF = 0,
  SPARQ_SVG_SINK_PARITY = 1, /* the reference: keys with video index < P in the CURRENT layout
                                (frame 0 for spatial heads; the first P/F raster positions of
                                every frame for permuted temporal heads) */
  SPARQ_SVG_SINK_FRAME0 = 2  /* every query also sees all P keys of frame 0, in both head types */
} sparq_svg_sink;

typedef enum sparq_svg_head {
  SPARQ_SVG_SPATIAL = 0, /* band in frame-major order: same and nearby frames */
  SPARQ_SVG_TEMPORAL = 1, /* band in token-major order: same and nearby positions, all frames */
  SPARQ_SVG_DENSE = 2     /* full attention (warm-up) */
} sparq_svg_head;

typedef struct sparq_svg_options {
  int64_t frames;       /* F >= 1 */
  int64_t frame_tokens; /* P >= 1 */
  int64_t text_tokens;  /* L >= 0 */
  sparq_svg_text text;
  double budget;        /* rho in (0, 1]: kept fraction of the S x S scores (default 0.25) */
  int64_t block;        /* Bs, the band is rounded to whole blocks (default 64) */
  bool inclusive_width; /* Wan's ceil(W / Bs) Bs with |i - j| <= Wt; default false: floor and < */
  int64_t profile_rows; /* t sampled query rows per (b, h) (default 32) */
  sparq_svg_sink sink;
  sparq_attn_variant inner; /* SPARQ_ATTN_FLASH_F32 (default) or SPARQ_ATTN_SAGE_CPU */
  uint64_t seed;        /* the profiling rows' draw */
  const sparq_svg_head *force; /* optional [B, H]: skip profiling and use these decisions */
  /* Dense warm-up (spec §3): the whole call runs dense (every head
   * SPARQ_SVG_DENSE, no profiling) when layer < floor(warmup_layers n_layers)
   * or step < floor(warmup_steps n_steps). Defaults 0: never. layer and step
   * count from 0; n_layers, n_steps >= 1 when the fractions are used. */
  int64_t layer, n_layers, step, n_steps;
  double warmup_layers;  /* lambda in [0, 1] (reference CogVideoX 0.025) */
  double warmup_steps;   /* tau in [0, 1] (reference CogVideoX I2V 0.2) */
} sparq_svg_options;

/* Whether this call falls in the dense warm-up (see the fields above). */
bool sparq_svg_in_warmup(const sparq_svg_options *opts);

/* F, P as given; L 0, no text, rho 0.25, Bs 64, strict width, t 32, no sink,
 * flash_f32 inside, seed 0, no forcing. */
sparq_svg_options sparq_svg_options_default(int64_t frames, int64_t frame_tokens);

/* What one call measured. */
typedef struct sparq_svg_stats {
  double density;        /* computed score entries / (B H S^2), over sparse heads only
                            (1 when every head is dense) */
  int64_t temporal_heads, spatial_heads, dense_heads;
  double profile_seconds, layout_seconds, kernel_seconds;
} sparq_svg_stats;

/* The band half-width Wt in tokens for S tokens (spec §2):
 *   rho' = rho - 2 L / S, W = S (1 - sqrt(1 - rho')),
 *   Wt = floor(W / Bs) Bs (strict: |i - j| < Wt) or ceil(W / Bs) Bs (inclusive).
 * rho' <= 0 gives 0 (text only); rho' >= 1 gives S (everything). With the
 * strict rule W < Bs also gives 0: video queries then see only text and sink
 * keys (a row that sees nothing outputs 0). Returns -1, with an error
 * recorded, on invalid arguments (S < 1, L < 0 or > S, block < 1, rho NaN). */
int64_t sparq_svg_band_width(int64_t S, int64_t L, double rho, int64_t block, bool inclusive);

/* Whether query i may see key j (both sequence indices in frame-major
 * order, 0 <= i, j < S) for a head of type `head` under `opts` with band
 * half-width wt: text queries see everything, every query sees the text
 * keys, video pairs follow the band in the head's layout plus the sink. The
 * predicate the kernels and profiling are tested against. */
bool sparq_svg_visible(const sparq_svg_options *opts, sparq_svg_head head, int64_t wt, int64_t i, int64_t j);

/* Permutes one head's [S, d] rows from frame-major to token-major video
 * order (text rows stay in place), or back when `inverse`. out must not
 * alias in. */
sparq_status sparq_svg_permute(const sparq_svg_options *opts, const float *in, float *out, int64_t d, bool inverse);

/* O = sparse video attention. decisions (optional, [B, H]) receives each
 * head's type; stats (optional) what was measured. sm_scale 1/sqrt(d).
 * Results do not depend on the thread count. */
sparq_status sparq_svg_attention(const float *q, const float *k, const float *v, float *o, int64_t B, int64_t H,
                                 int64_t d, const sparq_svg_options *opts, sparq_svg_head *decisions,
                                 sparq_svg_stats *stats);

/* sparq_svg_attention keeps its scratch (a few MB, for profiling, the
 * permuted copies and the kernels) per calling thread between calls, so a
 * model calling it once per layer and step does not page-fault fresh blocks
 * every time. This frees the calling thread's blocks (call it before a
 * thread that used SVG exits, or to return the memory). */
void sparq_svg_release_scratch(void);

/* Generated heads with a planted structure (spec §8 test 5), [B, H, S, d]:
 * `kind` 0 = all spatial (Q/K share a frame code), 1 = all temporal (Q/K
 * share a raster-position code), 2 = mixed (head h is temporal when h is
 * odd). planted (optional, [B, H]) receives the truth. */
sparq_status sparq_svg_make_case(int kind, int64_t B, int64_t H, int64_t d, const sparq_svg_options *opts,
                                 uint64_t seed, float *q, float *k, float *v, sparq_svg_head *planted);

#ifdef __cplusplus
}
#endif
#endif
