/* Sparse VideoGen's Sage inner path (opts->inner == SPARQ_ATTN_SAGE_CPU):
 * sage_cpu's kernels (attn_sage_internal.h: smooth K, INT8 per-token Q/K,
 * vpdpbusd QK, log2-domain online softmax, BF16 (or FP16) PV per 64-key
 * block flushed into FP32) run over the band kernel's key intervals
 * (svg_band.h).
 *
 * Per head (in its current layout, i.e. after the temporal permutation):
 * svg_sage_prepare quantizes Q, K and prepares V once, exactly as sage_cpu's
 * pre-pass does for a head of S keys (k_mean over all S keys, per-token
 * scales, the same V operand), keeping K-hat and V-hat as plain rows; the
 * key sequences the band kernel asks for most (all video keys forward, the
 * text keys, the frame-0 gathers, or all keys for a dense head) are packed
 * once, any other sequence (a block's reversed left band, a right band that
 * does not start on a 64-key boundary) is packed when asked for.
 *
 * svg_sage_interval runs one interval: query rows, a key sequence (layout
 * row first + j step, j = 0, 1, ...) and per row a visible prefix length; it
 * returns each row's dequantized normalized output, its running max m and sum
 * l in sage's log2 domain. All intervals of a row share the head's k_mean
 * (whose dropped row constant q k_mean is common to them) and sigma, so
 * svg_band's exact merge w_s = l_s 2^(m_s - max m) applies unchanged. A row
 * with one interval [0, S) reproduces sparq_attention's sage_cpu bit for bit. */
#ifndef SPARQ_KERNELS_SVG_SAGE_H
#define SPARQ_KERNELS_SVG_SAGE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/attn_sage_internal.h"
#include "kernels/svg_band.h"

/* What every head of one call shares. */
typedef struct svg_sage_call {
  sage_config cfg;  /* sage_cpu's defaults */
  sage_kernels k;
  float tau_log2e;  /* sm_scale log2(e) */
  int64_t dp;
} svg_sage_call;

/* Resolves sage_cpu's configuration for dp columns (SPARQ_ERR_UNSUPPORTED
 * past 256, as sparq_attention). */
sparq_status svg_sage_setup(float sm_scale, int64_t dp, const char *who, svg_sage_call *call);

/* One packed key sequence. */
typedef struct svg_sage_seq {
  int64_t first, step, n, cap; /* layout rows first + j step, j < n; room for cap keys */
  int8_t *k;                   /* [cap][dp] vpdpbusd layout */
  int32_t *corr;               /* [cap] */
  float *scale;                /* [cap] dK, 0 past n */
  void *v;                     /* [cap][dp] the PV operand */
} svg_sage_seq;

/* all keys (dense) or the video keys; the text keys; frame 0 forwards and
 * backwards; the video keys backwards (the left band parts) */
enum { SVG_SAGE_CACHES = 5 };

/* One thread's state for the head it runs (carved from scratch). */
typedef struct svg_sage_head {
  const svg_sage_call *call;
  const svg_band_geom *g;
  uint8_t *q_hat;  /* [S + 2 SAGE_BQ][dp] Q-hat + 128 */
  float *q_scale;  /* [S + 2 SAGE_BQ] */
  int8_t *k_rows;  /* [S][dp] K-hat */
  float *k_scale;  /* [S] */
  float *k_mean, *v_mean, *v_scale, *fs; /* [dp] */
  void *v_rows;    /* [S][dp] V-hat rows (2 bytes, or 1 for u8) */
  void *v_full;    /* [S_pad][dp] V-hat in the packed layout (pre-pass only) */
  float *tmp, *amax;
  svg_sage_seq cache[SVG_SAGE_CACHES], slot;
  sage_scratch item;
  int64_t *lim;    /* [SAGE_P_ROWS] */
} svg_sage_head;

/* Bytes of scratch one thread needs for any head of geometry g. */
size_t svg_sage_scratch_bytes(const svg_band_geom *g);

/* Prepares head g (q, k, v [S][dp] in its current layout) into h, carved
 * from scratch (svg_sage_scratch_bytes, 64-byte aligned). */
void svg_sage_prepare(svg_sage_head *h, const svg_sage_call *call, const svg_band_geom *g, const float *q,
                      const float *k, const float *v, unsigned char *scratch);

/* One interval for layout query rows [row0, row0 + rows): row r sees keys
 * first + j step for j < vis[r] (max vis > 0). Writes, for rows with
 * vis[r] > 0, out[r ldo ..] (normalized, dequantized), lsum[r] and m[r]. */
void svg_sage_interval(svg_sage_head *h, int64_t row0, int64_t rows, int64_t first, int64_t step, const int64_t *vis,
                       float *out, int64_t ldo, float *lsum, float *m);

#endif
