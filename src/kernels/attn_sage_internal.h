/* SageAttention internals shared by the driver (attn_sage.c), the knobs
 * (attn_sage_config.c), the pre-pass (attn_sage_prep*.c), the work items
 * (attn_sage_item.c), the QK + softmax kernels (attn_sage_qk_avx512.c and
 * the scalar twins in attn_sage_softmax.c), the PV kernels (attn_sage_pv*.c)
 * and the dump (attn_sage_dump.c). Spec: shared/spec/sage-attention.md.
 *
 * Data flow per call:
 *   pre-pass per kv head: k_mean, K' = K - k_mean, K quantized per group into
 *     K-hat (s8, packed for vpdpbusd), per-token scales dK, corr = 128 sum K-hat;
 *     V prepared for the PV path (v_mean, per-channel scale dV, packed operand);
 *   pre-pass per q head: Q' = Q - q_mean per 128-row block, dS = q_mean K'^T,
 *     Q quantized per group into Q-hat + 128 (u8) and per-token scales dQ with
 *     sm_scale * log2(e) folded in;
 *   main loop per work item (b, h, block of SAGE_BQ query rows): for each block
 *     of SAGE_BK keys, int32 scores -> dequantize -> online softmax in the log2
 *     domain -> P-tilde in the PV operand format -> block PV -> FP32 O.
 * Every granularity runs on the same kernels: group scales are expanded to
 * one scale per token. */
#ifndef SPARQ_KERNELS_ATTN_SAGE_INTERNAL_H
#define SPARQ_KERNELS_ATTN_SAGE_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/attn_internal.h"
#include "num/float_bits.h"
#include "sparq/base.h"

enum {
  SAGE_BK = 64,      /* keys per block (spec BK) */
  SAGE_BQ = 64,      /* query rows per work item */
  SAGE_QBLOCK = 128, /* smooth-Q block and per_block Q group (spec BQ) */
  SAGE_QK_ROWS = 4,  /* query rows per QK and PV register tile: 4 x 64 int32 = 16 zmm */
  SAGE_P_ROWS = SAGE_BQ /* rows of a P tile and of O: an item's rows rounded up to 4 */
};

#define SAGE_LOG2E 1.44269504088896340736f
#define SAGE_LN2 0.69314718055994530942
/* Masked scores: finite, so a running max never meets inf - inf; far below
 * any real score so exp2 of (mask - max) is exactly 0. */
#define SAGE_MASK (-3.0e38f)

/* How P-tilde and V-hat meet in the PV product. */
typedef enum sage_pv_kind {
  SAGE_PV_BF16, /* BF16 operands, FP32 sums of key pairs (vdpbf16ps) */
  SAGE_PV_F16,  /* FP16 operands, FP16 accumulator per key block (vfmadd231ph) */
  SAGE_PV_U8    /* u8 P-hat x s8 V-hat, int32 sums (vpdpbusd) */
} sage_pv_kind;

/* How the block sums reach O (spec §2.6 and §5). */
typedef enum sage_accum {
  SAGE_ACC_SINGLE_F32, /* O = alpha O, then O += every product in FP32 */
  SAGE_ACC_SINGLE_F22, /* same, O truncated to 13 mantissa bits after each 32 keys */
  SAGE_ACC_TWO_F32,    /* R = block sum (FP32, or int32 for u8), O = alpha O + R */
  SAGE_ACC_TWO_F22,    /* R truncated to 13 mantissa bits after each 32 keys, O = alpha O + R */
  SAGE_ACC_TWO_F16     /* R in an FP16 accumulator over the block, O = alpha O + R */
} sage_accum;

/* Rounding of P-tilde and V before the product. */
typedef enum sage_round {
  SAGE_ROUND_BF16,
  SAGE_ROUND_F16,
  SAGE_ROUND_E4M3, /* E4M3 values, held exactly in the kind's format */
  SAGE_ROUND_U8    /* P: round(P-tilde 255 / 2^sigma); V: s8 per channel */
} sage_round;

/* Format of the P tile that the softmax writes. */
typedef enum sage_p_format {
  SAGE_P_F32,
  SAGE_P_BF16,
  SAGE_P_F16,
  SAGE_P_U8,
  SAGE_P_E4M3_BF16, /* P-hat = E4M3(P-tilde), held exactly as BF16 */
  SAGE_P_E4M3_F16   /* the same held as FP16 */
} sage_p_format;

/* A call's resolved knobs (variant defaults applied). */
typedef struct sage_config {
  sparq_attn_variant variant;
  sparq_attn_granularity gran;
  bool smooth_k, smooth_q, smooth_v;
  int qmax;            /* 127 (INT8) or 7 (INT4) */
  sage_pv_kind pv;
  sage_accum accum;
  sage_round round;    /* of P and V */
  float sigma;         /* max P-tilde = 2^sigma */
  float v_range;       /* Vr: |V-hat| <= Vr per channel; 0 = V unscaled */
  bool hw_f16;         /* the FP16 path runs on AVX512-FP16 (else it is emulated) */
  sparq_attn_switch refine; /* K residual pass (sage_cpu's refine_k); OFF for the other variants */
} sage_config;

/* refine_k AUTO: refine a head when its estimated score error from K's
 * rounding, sm_scale max |q|_2 max dK / sqrt(12), exceeds this (nats). */
#define SAGE_REFINE_NATS 0.05

/* Resolves p->opts against the variant's defaults; SPARQ_ERR_ARG names a
 * knob the variant does not support. */
sparq_status sage_config_resolve(const attn_problem *p, sage_config *cfg);

/* ------------------------------------------------------------ pre-pass */

/* Quantization groups (spec §2.3): group index of token t and group count
 * for n tokens. Q and K use different tables. */
int64_t sage_q_group(sparq_attn_granularity g, int64_t t);
int64_t sage_k_group(sparq_attn_granularity g, int64_t t);
int64_t sage_q_group_count(sparq_attn_granularity g, int64_t n);
int64_t sage_k_group_count(sparq_attn_granularity g, int64_t n);

/* Rows padded to whole blocks. */
static inline int64_t sage_round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* Carving buffers out of one block in two passes: with base NULL only *at
 * advances (sizing the block), with the block each piece is placed at *at,
 * SPARQ_ALIGN-aligned. */
static inline void *sage_take(unsigned char *base, size_t *at, size_t bytes) {
  void *p = base ? base + *at : NULL;
  *at += (bytes + SPARQ_ALIGN - 1) / SPARQ_ALIGN * SPARQ_ALIGN;
  return p;
}

/* Everything prepared for one kv head. */
typedef struct sage_kv {
  float *k_mean;    /* [dp], zeros without smooth K */
  int8_t *k_hat;    /* [nk_pad / 16][dp / 4][16][4] */
  int32_t *k_corr;  /* [nk_pad] 128 * sum_c K-hat (zero past kv_len) */
  float *k_scale;   /* [nk_pad] dK per token (zero past kv_len, NaN for a non-finite row) */
  float *v_mean;    /* [dp], zeros without smooth V */
  float *v_scale;   /* [dp] dV per channel (1 when V is not scaled) */
  void *v_hat;      /* the PV operand, zero past kv_len:
                       BF16: uint16 [nk_pad / 2][dp][2]; F16: uint16 [nk_pad][dp];
                       U8: int8 [nk_pad / 4][dp][4] */
  /* refine_k (NULL when off): K' / dK = K-hat + K-lo / 128 with K-lo in
   * [-64, 64], packed as k_hat; the scores of both passes meet as
   * 128 S-hat + S-lo, so they take corr_fine = 128 corr + 128 sum K-lo and
   * scale_fine = dK / 128 (exact) */
  int8_t *k_lo;
  int32_t *k_corr_fine;
  float *k_scale_fine;
  float *k_step_max;     /* [1] the largest finite dK */
  unsigned char *k_fine; /* [1] whether k_lo and the fine sums and scales are filled */
} sage_kv;

/* Everything prepared for one q head. */
typedef struct sage_q {
  uint8_t *q_hat;   /* [nq_pad][dp] Q-hat + 128 (rows past q_len hold 128 = zero) */
  float *q_scale;   /* [nq_pad] dQ * sm_scale * log2(e) per token (0 past q_len) */
  float *q_delta;   /* [nq_pad] dQ itself, for the dump */
  float *q_mean;    /* [nqb][dp] smooth-Q means, or NULL */
  float *ds;        /* [nqb][nk_pad] dS = q_mean K'^T, or NULL */
  float *ds_log2;   /* [nqb][nk_pad] dS * sm_scale * log2(e), or NULL */
  float *q_norm_max; /* [1] the largest |q_i|_2 of the finite rows (refine_k), or NULL */
} sage_q;

/* Smoothing mean over the rows of x[n][dp] whose values are all finite (a
 * row with a NaN or inf must poison only what it touches, as in exact
 * attention); zeros when no row is finite. Accumulates in double, per
 * channel in row order. */
void sage_mean_rows(const float *x, int64_t n, int64_t dp, float *mean);
/* True when row x[0..dp) holds no NaN or inf. */
bool sage_row_finite_ref(const float *x, int64_t dp);
/* acc[c] += (double)x[c] for c < dp. */
void sage_row_add_f64_ref(const float *x, int64_t dp, double *acc);
#ifdef SPARQ_HAVE_X86_SIMD
bool sage_row_finite_avx512(const float *x, int64_t dp);
void sage_row_add_f64_avx512(const float *x, int64_t dp, double *acc);
#endif

/* Quantizes rows x[n][dp] (minus sub[dp] when sub is not NULL, or minus
 * sub_rows[t / SAGE_QBLOCK][dp] when that is not NULL) per group of
 * group_of(g, t): delta = max|x| / qmax + 1e-7 over the group's finite rows,
 * x-hat = clamp(round_half_even(x / delta), -qmax, qmax). Writes x-hat to
 * q[t][dp] and the per-token delta to scale[t]; a row with a non-finite
 * value gets x-hat 0 and delta NaN, so it poisons its own scores only.
 * amax is scratch of group_count floats (unused per token: a token is its
 * own group, so each row is visited once). */
void sage_quantize_rows(const float *x, int64_t n, int64_t dp, const float *sub, const float *sub_rows, int qmax,
                        sparq_attn_granularity g, bool is_q, float *amax, int8_t *q, float *scale);

/* Row kernels of the quantizer: max |x - s| and clamp(rne((x - s) / delta))
 * for one row of dp values (s may be NULL). AVX-512 twins give the same bits. */
float sage_row_absmax_ref(const float *x, const float *s, int64_t dp);
void sage_row_quant_ref(const float *x, const float *s, int64_t dp, float delta, float qmax, int8_t *q);
#ifdef SPARQ_HAVE_X86_SIMD
float sage_row_absmax_avx512(const float *x, const float *s, int64_t dp);
void sage_row_quant_avx512(const float *x, const float *s, int64_t dp, float delta, float qmax, int8_t *q);
#endif

/* Packs K-hat rows [nk][dp] into the vpdpbusd layout [nk_pad / 16][dp / 4][16][4]
 * (zeros past nk) and writes corr[j] = 128 sum_c K-hat[j][c]; nk_pad is a
 * multiple of 16. sage_pack_k picks the twin. */
void sage_pack_k(const int8_t *k_hat, int64_t nk, int64_t nk_pad, int64_t dp, int8_t *packed, int32_t *corr);
void sage_pack_k_ref(const int8_t *k_hat, int64_t nk, int64_t nk_pad, int64_t dp, int8_t *packed, int32_t *corr);
#ifdef SPARQ_HAVE_X86_SIMD
void sage_pack_k_avx512(const int8_t *k_hat, int64_t nk, int64_t nk_pad, int64_t dp, int8_t *packed, int32_t *corr);
#endif
/* Element (j, c) of a packed K-hat. */
static inline int8_t sage_packed_k_at(const int8_t *packed, int64_t dp, int64_t j, int64_t c) {
  return packed[((j / 16) * (dp / 4) + c / 4) * 64 + (j % 16) * 4 + c % 4];
}

/* refine_k's second level of one kv head: from K (minus mean when not
 * NULL) and its packed K-hat, k_corr and k_scale, fills kv->k_lo,
 * k_corr_fine and k_scale_fine. */
void sage_prepare_k_residual(const float *k, const float *mean, int64_t nk, int64_t nk_pad, int64_t dp,
                             sage_kv *kv);

/* Whether q head q refines its kv head kv (both prepared, refine_k not
 * OFF): always with ON; with AUTO when sm_scale max |q|_2 max dK / sqrt(12)
 * exceeds SAGE_REFINE_NATS. */
static inline bool sage_refine_wanted(const sage_config *cfg, float sm_scale, const sage_q *q, const sage_kv *kv) {
  return cfg->refine == SPARQ_ATTN_ON ||
         (double)sm_scale * (double)*q->q_norm_max * (double)*kv->k_step_max / sqrt(12.0) > SAGE_REFINE_NATS;
}

/* BF16 V-hat in the vdpbf16ps layout [nk_pad / 2][dp][2] from V[nk][dp]
 * (zeros past nk; nk_pad even), rounded as sparq_bf16_from_f32. */
void sage_pack_v_bf16_ref(const float *v, int64_t nk, int64_t nk_pad, int64_t dp, uint16_t *dst);
#ifdef SPARQ_HAVE_X86_SIMD
void sage_pack_v_bf16_avx512(const float *v, int64_t nk, int64_t nk_pad, int64_t dp, uint16_t *dst);
#endif

/* Prepares V of one kv head for cfg's PV path into kv->v_mean, v_scale,
 * v_hat. tmp is scratch of nk * dp floats. */
void sage_prepare_v(const sage_config *cfg, const float *v, int64_t nk, int64_t nk_pad, int64_t dp, float *tmp,
                    sage_kv *kv);

/* dS[b][j] = q_mean[b] . (K[j] - k_mean) for b < nqb, j < nk, in double,
 * rounded to FP32; zero for j >= nk. */
void sage_delta_s(const float *q_mean, int64_t nqb, const float *k, const float *k_mean, int64_t nk,
                  int64_t nk_pad, int64_t dp, float *ds);

/* ----------------------------------------------------------------- kernels */

/* ------------------------------------------------ shared scalar pieces
 * Inline so the SIMD kernels use the very same operation sequence as their
 * scalar twins (explicit fmaf: no contraction choices by the compiler). */

/* Near-minimax degree-5 fit of 2^f on |f| <= 1/2 with c0 = 1 exactly (so
 * 2^0 = 1 and the row max gets exactly 2^sigma): relative error < 1.6e-7. */
#define SAGE_EXP2_C1 6.931469440e-01f
#define SAGE_EXP2_C2 2.402212024e-01f
#define SAGE_EXP2_C3 5.550713092e-02f
#define SAGE_EXP2_C4 9.675540961e-03f
#define SAGE_EXP2_C5 1.327647245e-03f

/* 2^x for x <= 64 (scores give x <= sigma): round to nearest even,
 * polynomial, scale by 2^n. Exactly 0 for x < -125 (and -inf), so every
 * result is a normal float or 0; NaN stays NaN. */
static inline float sage_exp2(float x) {
  if (x < -125.0f) return 0.0f;
  if (x != x) return x;
  if (x > 64.0f) return x - x + INFINITY; /* +inf gives NaN as in the SIMD kernel */
  /* round half to even by the 1.5 * 2^23 trick: exact for |x| < 2^22 */
  float n = (x + 12582912.0f) - 12582912.0f;
  float f = x - n;
  float p = fmaf(fmaf(fmaf(fmaf(fmaf(SAGE_EXP2_C5, f, SAGE_EXP2_C4), f, SAGE_EXP2_C3), f, SAGE_EXP2_C2), f,
                      SAGE_EXP2_C1),
                 f, 1.0f);
  return p * bits_f32((uint32_t)((int32_t)n + 127) << 23);
}

/* One row's online-softmax state across key blocks. */
typedef struct sage_row_state {
  float m;     /* running max of the log2-domain scores, -inf before any key */
  float l;     /* running sum of P-tilde */
} sage_row_state;

/* Arguments of one QK + softmax tile: SAGE_QK_ROWS query rows x one key block. */
typedef struct sage_qk_tile {
  const uint8_t *q;       /* [SAGE_QK_ROWS][dp] Q-hat + 128 */
  const float *q_scale;   /* [SAGE_QK_ROWS] */
  const float *ds[SAGE_QK_ROWS]; /* per row: dS * tau * log2e of this key block ([SAGE_BK]); NULL for
                                    every row or for none */
  const int8_t *k;        /* the packed key block: [4][dp / 4][16][4] */
  const int8_t *k_lo;     /* refine_k: K-lo of the block, packed as k (then k_corr and k_scale
                             are the fine ones); NULL: one pass */
  const int32_t *k_corr;  /* [SAGE_BK] */
  const float *k_scale;   /* [SAGE_BK] */
  int64_t dp;
  int64_t row0;           /* index of the first row in the head */
  int64_t key0;           /* index of the first key */
  int64_t kv_len;
  bool causal;
  int64_t causal_offset;
  const int64_t *limit;   /* optional [SAGE_QK_ROWS]: row r also sees only keys < limit[r] (a
                             per-row key prefix, e.g. Sparse VideoGen's intervals); NULL: none */
  bool masked;            /* some key of the block is masked for some row of the tile */
  float sigma;
  sage_p_format fmt;
  float u8_scale;         /* SAGE_P_U8: P-hat = round(P-tilde * u8_scale) */
  void *p;                /* [SAGE_QK_ROWS][SAGE_BK] P tile rows in fmt */
  sage_row_state *state;  /* [SAGE_QK_ROWS], updated */
  float *alpha;           /* [SAGE_QK_ROWS] rescale of O for this block */
} sage_qk_tile;

/* First key (relative to the block, 0..SAGE_BK) masked for row r of the tile. */
static inline int sage_mask_from(const sage_qk_tile *t, int r) {
  int64_t limit = t->kv_len;
  if (t->causal) {
    int64_t last = t->row0 + r + t->causal_offset + 1;
    if (last < limit) limit = last;
  }
  if (t->limit && t->limit[r] < limit) limit = t->limit[r];
  limit -= t->key0;
  return limit < 0 ? 0 : limit > SAGE_BK ? SAGE_BK : (int)limit;
}

/* Keys of the block (0..SAGE_BK) that some row of the tile sees: the keys
 * from here on are masked for every row, so kernels may skip them. */
static inline int sage_tile_key_end(const sage_qk_tile *t) {
  int end = 0;
  for (int r = 0; r < SAGE_QK_ROWS; r++) {
    const int from = sage_mask_from(t, r);
    end = from > end ? from : end;
  }
  return end;
}

/* Online-softmax step of row r given its block max: sets alpha[r] and the
 * running max, returns the bias b with P-tilde = 2^(s - b). */
static inline float sage_row_begin(const sage_qk_tile *t, int r, float block_max) {
  sage_row_state *st = &t->state[r];
  float m_new = block_max > st->m ? block_max : st->m;
  /* a row that has seen only non-finite scores keeps m = -inf; subtracting
   * 0 instead keeps -inf - -inf (NaN) out of alpha and P */
  float m_use = m_new == -INFINITY ? 0.0f : m_new;
  t->alpha[r] = sage_exp2(st->m - m_use);
  st->m = m_new;
  return m_use - t->sigma;
}

static inline void sage_row_end(const sage_qk_tile *t, int r, float block_sum) {
  sage_row_state *st = &t->state[r];
  st->l = fmaf(t->alpha[r], st->l, block_sum);
}

/* Sum of 64 floats in the SIMD kernel's order: 4 vectors pairwise, then a
 * halving tree over the 16 lanes. */
static inline float sage_sum64(const float *x) {
  float lane[16];
  for (int i = 0; i < 16; i++) lane[i] = (x[i] + x[16 + i]) + (x[32 + i] + x[48 + i]);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; i++) lane[i] = lane[i] + lane[i + w];
  return lane[0];
}

/* u8 P-hat = round_half_even(x scale) clamped to 0..255; NaN gives 0 as the
 * SIMD conversion (INT_MIN) clamped does. */
static inline uint8_t sage_p_u8(float x, float scale) {
  float v = x * scale;
  if (!(v > 0.0f)) return 0;
  v = (v + 12582912.0f) - 12582912.0f;
  return v >= 255.0f ? 255 : (uint8_t)v;
}

/* Scalar twins: int32 scores S = Q-hat K-hat^T (the 128 offset removed) of a
 * tile, and the online softmax of one row of them. */
void sage_qk_scores_ref(const sage_qk_tile *t, int32_t *s /* [SAGE_QK_ROWS][SAGE_BK] */);
void sage_softmax_row_ref(const sage_qk_tile *t, int r, const int32_t *s_row);
/* The whole tile, scalar. */
void sage_qk_tile_ref(const sage_qk_tile *t);
#ifdef SPARQ_HAVE_X86_SIMD
/* vpdpbusd scores (no softmax), for the bit-exactness tests. */
void sage_qk_scores_vnni(const sage_qk_tile *t, int32_t *s);
/* vpdpbusd scores fused with dequantization and the online softmax. Same
 * results as sage_qk_tile_ref bit for bit. Needs AVX512-VNNI and -BF16. */
void sage_qk_tile_vnni(const sage_qk_tile *t);
#endif

/* PV of one 64-key block for `rows` rows (a multiple of 4; the P tile has
 * SAGE_BK columns per row, O has dp), O updated per `accum`:
 *   BF16: p uint16 [rows][SAGE_BK], v [SAGE_BK / 2][dp][2]; R = sum of key
 *   pairs in FP32 (vdpbf16ps), every accumulation mode except TWO_F16.
 *   npairs, when not NULL, gives per 4 rows the key pairs to sum (0..32):
 *   the pairs after them hold P-tilde 0 for those rows (a causal diagonal)
 *   and are skipped; NULL sums all 32. */
void sage_pv_bf16_ref(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o, const float *alpha,
                      sage_accum accum, const uint8_t *npairs);
/* FP16: p uint16 [SAGE_P_ROWS][SAGE_BK], v uint16 [SAGE_BK][dp]; o = alpha o + R,
 * R accumulated key by key in FP16 (each step one rounding, as vfmadd231ph). */
void sage_pv_f16_ref(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o, const float *alpha);
/* U8: p uint8 [SAGE_P_ROWS][SAGE_BK], v int8 [SAGE_BK / 4][dp][4]; o = alpha o + (float)R. */
void sage_pv_u8_ref(const uint8_t *p, const int8_t *v, int64_t rows, int64_t dp, float *o, const float *alpha);
#ifdef SPARQ_HAVE_X86_SIMD
void sage_pv_bf16_avx512bf16(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                             const float *alpha, sage_accum accum, const uint8_t *npairs);
void sage_pv_f16_avx512(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                        const float *alpha);
void sage_pv_u8_vnni(const uint8_t *p, const int8_t *v, int64_t rows, int64_t dp, float *o, const float *alpha);
/* True when this build has the AVX512-FP16 kernel (gcc >= 12, clang >= 15). */
bool sage_pv_f16_hw_built(void);
void sage_pv_f16_avx512fp16(const uint16_t *p, const uint16_t *v, int64_t rows, int64_t dp, float *o,
                            const float *alpha);
#endif

/* Branch-free select: mask all ones picks a, all zeros picks b. */
static inline uint32_t sage_sel(uint32_t mask, uint32_t a, uint32_t b) { return (a & mask) | (b & ~mask); }
static inline uint32_t sage_mask(int cond) { return 0u - (uint32_t)(cond != 0); }

/* The nearest binary16 value of x, as a float: sparq_f16_to_f32(
 * sparq_f16_from_f32(x)) bit for bit (RNE, subnormals, overflow to inf, NaN
 * quieted with its payload), but inline and branch-free so the scalar twins'
 * channel loops vectorize. */
static inline float sage_f16_round(float x) {
  const uint32_t u = f32_bits(x), sign = u & 0x80000000u, a = u & 0x7FFFFFFFu;
  uint32_t normal = (a + 0xFFFu + ((a >> 13) & 1u)) & 0xFFFFE000u;             /* RNE at 10 mantissa bits */
  normal = sage_sel(sage_mask(normal > 0x477FE000u), 0x7F800000u, normal);      /* past 65504: inf */
  /* below 2^-14 the grid is 2^-24, the ulp of FP32 numbers in [0.5, 1) */
  const uint32_t sub = f32_bits((bits_f32(a) + 0.75f) - 0.75f);
  const uint32_t nan = 0x7FC00000u | (a & 0x003FE000u);
  uint32_t r = sage_sel(sage_mask(a < 0x38800000u), sub, normal);
  r = sage_sel(sage_mask(a >= 0x7F800000u), sage_sel(sage_mask(a > 0x7F800000u), nan, a), r);
  return bits_f32(r | sign);
}

/* binary16 bits -> float, inline and branch-free (sparq_f16_to_f32 bit for bit). */
static inline float sage_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  const uint32_t sub = f32_bits((float)m * 5.9604644775390625e-08f); /* m 2^-24, exact */
  const uint32_t special = 0x7F800000u | (sage_mask(m != 0) & (0x00400000u | (m << 13)));
  uint32_t r = sage_sel(sage_mask(e == 0), sub, ((e + 112u) << 23) | (m << 13));
  r = sage_sel(sage_mask(e == 0x1F), special, r);
  return bits_f32(r | sign);
}

/* One FP16 accumulation step exactly as vfmadd231ph rounds it:
 * fp16(acc + p v) with a single rounding (p, v, acc FP16 values as floats).
 * The product is exact in FP32 (11 x 11 significant bits); TwoSum gives the
 * exact error of the FP32 sum, and rounding that sum to odd (a sticky last
 * bit) makes the second rounding, to FP16's 11 bits, equal to one rounding
 * of the exact result. */
static inline float sage_f16_fma(float acc, float p, float v) {
  const float prod = p * v;
  const float s = acc + prod;
  const float bb = s - acc;
  const float e = (acc - (s - bb)) + (prod - bb);
  const uint32_t u = f32_bits(s), e2 = f32_bits(e) << 1;
  const uint32_t step = 1u | (0u - ((f32_bits(e) ^ u) >> 31)); /* +1 or -1: toward the exact sum */
  /* integer masks only (e != 0, s even): gcc vectorizes these, not a float compare */
  const uint32_t inexact = 0u - ((e2 | (0u - e2)) >> 31), even = (u & 1u) - 1u;
  return sage_f16_round(bits_f32(u + (step & inexact & even)));
}

/* Truncates x to 13 mantissa bits (the FP22 accumulator of FP8 MMAs). */
static inline float sage_trunc22(float x) { return bits_f32(f32_bits(x) & 0xFFFFFC00u); }

/* The E4M3 value nearest x, as a float: sparq_e4m3_to_f32(
 * sparq_e4m3_from_f32(x)) bit for bit (RNE, subnormals on a 2^-9 grid,
 * saturation at +-448 for every |x| >= 448 and inf, NaN -> +-0x7FC00000),
 * inline and branch-free for the softmax's P rounding. */
static inline float sage_e4m3_round(float x) {
  const uint32_t u = f32_bits(x), sign = u & 0x80000000u, a = u & 0x7FFFFFFFu;
  uint32_t normal = (a + 0x7FFFFu + ((a >> 20) & 1u)) & 0xFFF00000u; /* RNE at 3 mantissa bits */
  normal = normal > 0x43E00000u ? 0x43E00000u : normal;              /* 448 and up (inf too): 448 */
  /* below 2^-6 the grid is 2^-9, the ulp of FP32 numbers in [2^14, 2^15) */
  const uint32_t sub = f32_bits((bits_f32(a) + 24576.0f) - 24576.0f);
  uint32_t r = sage_sel(sage_mask(a < 0x3C800000u), sub, normal);
  r = sage_sel(sage_mask(a > 0x7F800000u), 0x7FC00000u, r);
  return bits_f32(r | sign);
}

/* FP16 bits of a value that FP16 holds exactly (an E4M3 value, or NaN). */
static inline uint16_t sage_exact_f16_bits(float x) {
  const uint32_t u = f32_bits(x), a = u & 0x7FFFFFFFu;
  const uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t r = a ? (a >> 13) - (112u << 10) : 0u;
  r = a > 0x7F800000u ? 0x7E00u : r;
  return (uint16_t)(r | sign);
}

/* ------------------------------------------------- driver and work items */

/* Geometry shared by every stage. */
typedef struct sage_geom {
  int64_t nq_pad, nk_pad, nqb, dp;
  float tau_log2e;
} sage_geom;

/* The per-call buffers of every head. */
typedef struct sage_buffers {
  /* per kv head, [B * Hkv] blocks */
  float *k_mean, *k_scale, *v_mean, *v_scale;
  int8_t *k_hat;
  int32_t *k_corr;
  void *v_hat;
  int8_t *k_lo;                 /* refine_k only, else NULL */
  int32_t *k_corr_fine;
  float *k_scale_fine, *k_step_max;
  unsigned char *k_fine;
  /* per q head, [B * Hq] blocks */
  uint8_t *q_hat;
  float *q_scale, *q_delta, *q_mean, *ds, *ds_log2;
  float *q_norm_max;            /* refine_k only, else NULL */
} sage_buffers;

/* Views of kv head idx (b * Hkv + h) and q head idx (b * Hq + h). */
sage_kv sage_kv_at(const sage_buffers *b, const sage_geom *g, int64_t idx);
sage_q sage_q_at(const sage_buffers *b, const sage_geom *g, int64_t idx);

/* Kernels picked once per call from the active ISA. */
typedef struct sage_kernels {
  void (*qk)(const sage_qk_tile *);
  void (*pv_bf16)(const uint16_t *, const uint16_t *, int64_t, int64_t, float *, const float *, sage_accum,
                  const uint8_t *);
  void (*pv_f16)(const uint16_t *, const uint16_t *, int64_t, int64_t, float *, const float *);
  void (*pv_u8)(const uint8_t *, const int8_t *, int64_t, int64_t, float *, const float *);
} sage_kernels;

/* The kernels attn_forward_sage picks for cfg (also used by Sparse
 * VideoGen's Sage inner path, svg_sage.c). */
sage_kernels sage_pick_kernels(const sage_config *cfg);
/* The P tile format a config's PV path uses, and its bytes per element. */
sage_p_format sage_p_format_of(const sage_config *cfg);
size_t sage_p_bytes(sage_p_format f);

typedef struct sage_run {
  const attn_problem *p;
  const sage_config *cfg;
  const sage_geom *g;
  const sage_buffers *buf;
  sage_kernels k;
} sage_run;

/* Per-thread scratch of the main loop. */
typedef struct sage_scratch {
  void *p;          /* [SAGE_P_ROWS][SAGE_BK] P tile, 4 bytes per element at most */
  float *o;         /* [SAGE_P_ROWS][dp] O */
  float *alpha, *fs;
  sage_row_state *state;
} sage_scratch;

size_t sage_scratch_bytes(int64_t dp);
sage_scratch sage_scratch_at(unsigned char *base, int64_t dp);
/* Runs work item `item` (batch-major, then head, then query block). */
void sage_run_item(const sage_run *run, const sage_scratch *s, int64_t item);

/* ------------------------------------------------------------------- dump */

/* Writes the quantized Q-hat/K-hat, their per-token scales, dS and the
 * smoothing means as .npy files into dir. */
sparq_status sage_dump(const attn_problem *p, const sage_config *cfg, const sage_q *qs, const sage_kv *kvs,
                       int64_t nq_pad, int64_t nk_pad, int64_t nqb);

#endif
