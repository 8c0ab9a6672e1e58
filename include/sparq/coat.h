/* COAT's FP8 optimizer states (spec coat-fp8.md sections 1-3, 7, 9):
 * per-group FP8 quantisation with Dynamic Range Expansion (DRE) and the
 * FP8 AdamW built on it.
 *
 * Include sparq/train.h (which includes this header): the optimizer takes
 * the AdamW hyperparameters (struct sparq_adamw_config) and the FP32 shadow
 * (struct sparq_adamw_state) declared there. */
#ifndef SPARQ_COAT_H
#define SPARQ_COAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/nn.h"
#include "sparq/num.h"
#include "sparq/status.h"
#include "sparq/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sparq_adamw_config;
struct sparq_adamw_state;

/* ------------------------------------------------------------ formats */

/* sparq_fp8_format (E4M3 / E5M2), sparq_fp8_max and sparq_fp8_format_name
 * are num.h's, shared with the FP8 activations. */
/* Parses "e4m3" / "e5m2"; false for anything else (out untouched). */
bool sparq_fp8_format_parse(const char *name, sparq_fp8_format *out);
/* SPARQ_F8_E4M3 / SPARQ_F8_E5M2: the safetensors dtype of the codes. */
sparq_dtype sparq_fp8_dtype(sparq_fp8_format fmt);

/* ------------------------------------------------------ group codec */

/* Elements per quantisation group of the optimizer states (COAT's
 * qgroup_size). A tensor of N elements has ceil(N / 128) groups; the last
 * one is short when 128 does not divide N. */
#define SPARQ_FP8_GROUP 128

/* The FP32 side data of one group: dequantised x' =
 * sign(y') |y'|^(1/k) c with y' = dec(code) scale. */
typedef struct sparq_fp8_group {
  float scale; /* > 0 */
  float k;     /* expansion exponent: a multiple of 1/16 in [1/16, 4096]; 1 without DRE */
  float c;     /* centre ~ sqrt(max) sqrt(min) (DRE); 1 without DRE */
} sparq_fp8_group;

/* Quantises one group x[0..n), 1 <= n <= SPARQ_FP8_GROUP, into codes[0..n)
 * of format `fmt` and writes its side data to *g.
 *
 * Plain (dre false): scale = max|x| / FMT_MAX, code = enc(x / scale), k = 1,
 * c = 1. An all-zero group gets scale 1; the scale is floored at FLT_MIN
 * (a subnormal scale would be flushed to 0 under FTZ).
 *
 * DRE (dre true), COAT's released kernel with the zero-skipping minimum:
 *   mx = max|x| + 1e-30,  mn = min over non-zero |x| + 1e-30,  R = mx / mn
 *   k  = floor(16 log2(100352) / log2(R)) / 16   (100352 = 448^2 / 2, for
 *        both formats, as in the kernel; log2 in double)
 *   c  = sqrt(mx) sqrt(mn)
 *   y  = sign(x) (|x| / c)^k,  scale = (mx / c)^k / FMT_MAX,  code = enc(y / scale)
 * so the largest element lands on FMT_MAX and the smallest non-zero one on
 * FMT_MAX / R^k >= FMT_MAX / 100352 (> 2^-9 for E4M3): no non-zero element
 * underflows to 0.
 * Edge cases: an all-zero group stores zero codes with k = 1, c = 1,
 * scale = 1; a constant group (R = 1) gets k = 1. Deliberate departures
 * from the kernel, both documented in fp8_dre.c:
 *   - k is capped at 4096. The cap binds only when R < 1.0028, where the
 *     kernel's k (up to ~1e8) would amplify the FP32 rounding of |x| / c by
 *     k and could push the smallest element below E4M3's range.
 *   - c is then moved by at most 16 ulps and the scale by about k ulps, so
 *     that the largest element dequantises to exactly max|x| (spec 9.3: the
 *     FP32 roundings of the power, the division and the products would leave it
 *     a few ulps off). In under 0.1% of groups no such pair exists near the
 *     formula values; the max then comes back one ulp off. The codes are
 *     computed with the final c and scale. The fit needs
 *     max|x| >= 2^24 * 1e-30, where the kernel's 1e-30 offset vanishes in
 *     the FP32 sum.
 * Non-finite inputs give NaN codes or NaN side data (no error: the
 * optimizer counts them). */
void sparq_fp8_quantize_group(const float *x, size_t n, sparq_fp8_format fmt, bool dre, uint8_t *codes,
                              sparq_fp8_group *g);

/* x[0..n) = the dequantised group: dec(code) scale when k = 1 and c = 1,
 * else sign(y') pow(|y'|, 1 / k) c with y' = dec(code) scale. A zero code
 * gives 0 (of the code's sign).
 * Every power in this codec is sparq's own (src/train/fp8_dre_pow.h):
 * evaluated in double and rounded once to float, so it is the correctly
 * rounded power but for arguments within ~1e-13 of a rounding boundary,
 * and the scalar and AVX-512 paths give the same bits: codes, group
 * parameters and dequantised values do not depend on the ISA. */
void sparq_fp8_dequantize_group(const uint8_t *codes, size_t n, sparq_fp8_format fmt, const sparq_fp8_group *g,
                                float *x);

/* ------------------------------------------------------- FP8 AdamW */

typedef struct sparq_adamw_fp8_config {
  sparq_fp8_format m_format; /* first moment: default E4M3 */
  sparq_fp8_format v_format; /* second moment: default E4M3 */
  bool dre;                  /* Dynamic Range Expansion (default true); false = plain per-group */
  bool shadow;               /* also keep FP32 moments on the same gradients (debug; see stats) */
  bool identity;             /* test mode: m and v stay FP32 (no codes); the step then equals
                                sparq_adamw_step bit for bit */
} sparq_adamw_fp8_config;

/* E4M3 / E4M3, DRE on, no shadow, not identity. */
sparq_adamw_fp8_config sparq_adamw_fp8_config_default(void);

/* One trainable parameter tensor's share of the state. */
typedef struct sparq_adamw_fp8_tensor {
  size_t param;        /* index into the parameter list's items */
  size_t offset;       /* the parameter's offset in the list's flat buffer (and the shadow's) */
  size_t numel;        /* elements (no padding) */
  size_t code_offset;  /* into the codes arrays (and m32 / v32) */
  size_t group_offset; /* into the per-group arrays */
  size_t ngroups;      /* ceil(numel / 128) */
  /* the last step's counts over this tensor: FP32 values that were
   * non-zero, and those of them whose code dequantises to 0 */
  uint64_t m_nonzero, m_zeroed, v_nonzero, v_zeroed;
} sparq_adamw_fp8_tensor;

/* One moment (m or v) of every tensor, as COAT's four state tensors:
 * exp_avg (codes), scale_exp_avg, expand_exp_avg (k), sqrtminmax_exp_avg (c). */
typedef struct sparq_fp8_moment {
  uint8_t *codes;          /* total numel codes, tensor by tensor (code_offset) */
  float *scale, *k, *c;    /* total ngroups each, tensor by tensor (group_offset) */
} sparq_fp8_moment;

/* After each step: non-finite elements and the v-flush count. */
typedef struct sparq_adamw_fp8_counters {
  uint64_t nan_params; /* trainable parameters that are NaN or +-inf */
  uint64_t nan_m, nan_v; /* new FP32 m / v values that are NaN or +-inf */
  uint64_t v_flush;    /* new FP32 v != 0 whose code dequantises to 0 (0 with DRE) */
} sparq_adamw_fp8_counters;

typedef struct sparq_adamw_fp8_state {
  sparq_adamw_fp8_config cfg;
  sparq_adamw_fp8_tensor *tensors; /* ntensors, owned: the list's non-frozen parameters in order */
  size_t ntensors;
  size_t numel, ngroups; /* totals over the tensors */
  sparq_fp8_moment m, v; /* owned; codes NULL in identity mode */
  float *m32, *v32;      /* identity mode only: numel floats each (code_offset layout), owned */
  struct sparq_adamw_state *shadow; /* shadow mode only: FP32 moments in the list's flat layout, owned */
  int64_t step;          /* updates done so far */
  sparq_adamw_fp8_counters last; /* of the last step */
} sparq_adamw_fp8_state;

/* Zeroed state (zero codes, scale 1, k 1, c 1: dequantises to 0) for the
 * non-frozen parameters of `pl` (allocated). Fails with SPARQ_ERR_ARG on a
 * NULL or unallocated list or a bad format, SPARQ_ERR_NOMEM. */
sparq_status sparq_adamw_fp8_init(sparq_adamw_fp8_state *st, const sparq_param_list *pl,
                                  const sparq_adamw_fp8_config *cfg);
/* Frees everything and zeroes *st; safe on a zeroed state and twice. */
void sparq_adamw_fp8_free(sparq_adamw_fp8_state *st);

/* One update, t = st->step + 1, group by group (128 elements of one
 * tensor): dequantise m and v to FP32; then exactly the operations and
 * order of sparq_adamw_step (p *= 1 - lr wd on decay parameters, m, v,
 * bias-corrected update, the same FP32 roundings); requantise m (signed)
 * and v with DRE or plain per-group scaling. Fills st->last and the
 * tensors' zero counts. Groups are independent (OpenMP over groups), so
 * the result does not depend on the thread count. Same argument checks as
 * sparq_adamw_step; st must have been made for this list. */
sparq_status sparq_adamw_fp8_step(sparq_adamw_fp8_state *st, sparq_param_list *pl,
                                  const struct sparq_adamw_config *cfg, float lr);

/* Exact bytes of the FP8 state of `pl`: the sum over its non-frozen tensors
 * of 2 N + 24 ceil(N / 128) (N elements): one byte per element for each of
 * m and v, and scale, k, c in FP32 per group for each. Excludes the shadow
 * and the identity mode's FP32 copies. 0 for a NULL list. */
size_t sparq_adamw_fp8_state_bytes(const sparq_param_list *pl);

/* Histogram of k: bins of width 1/4 from 0 (bin b = [b/4, (b+1)/4)), the
 * last one [8, inf). */
#define SPARQ_FP8_K_BINS 33
#define SPARQ_FP8_K_BIN_WIDTH 0.25

/* Per-tensor diagnostics (spec section 7). */
typedef struct sparq_adamw_fp8_stats {
  uint32_t k_hist_m[SPARQ_FP8_K_BINS], k_hist_v[SPARQ_FP8_K_BINS]; /* groups per bin */
  double frac_k_lt1_m, frac_k_lt1_v; /* fraction of groups with k < 1 */
  double zero_frac_m, zero_frac_v;   /* of the last step's non-zero FP32 values, the fraction
                                        whose code dequantises to 0 (0 when none were non-zero) */
  /* shadow mode (NaN otherwise): sum (a - b)^2 / sum b^2 over the tensor,
   * a from the dequantised state, b from the FP32 shadow (0 when both are
   * all zero): m, v and the update direction m / (sqrt(v) / sqrt(1 - beta2^t) + eps) */
  double relmse_m, relmse_v, relmse_update;
} sparq_adamw_fp8_stats;

/* Diagnostics of tensor `t` (< st->ntensors) from the current state; cfg
 * gives eps and beta2 for the update direction. Deterministic (serial in a
 * fixed order). */
sparq_status sparq_adamw_fp8_tensor_stats(const sparq_adamw_fp8_state *st, const struct sparq_adamw_config *cfg,
                                          size_t t, sparq_adamw_fp8_stats *out);

/* The dequantised moments of tensor `t` into m[0..numel) and v[0..numel)
 * (either may be NULL): what the next step starts from. */
sparq_status sparq_adamw_fp8_dequantize(const sparq_adamw_fp8_state *st, size_t t, float *m, float *v);

#ifdef __cplusplus
}
#endif
#endif
