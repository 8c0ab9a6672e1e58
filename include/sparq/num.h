/* Number formats and quantizers: BF16, FP16, FP8 (E4M3, E5M2) codecs and
 * symmetric INT8/INT4 quantization with scales.
 *
 * Every conversion is a pure function of the input bits: it uses integer bit
 * manipulation (or instructions that ignore MXCSR), so the results do not
 * depend on the thread's rounding mode or on flush-to-zero /
 * denormals-are-zero, which sparq_set_threads() turns on. Denormal float
 * inputs are rounded exactly like any other value.
 *
 * The bulk converters (suffix _n) pick an AVX-512 or AVX2 kernel at run time
 * (sparq_isa_active()) and give results bit-identical to their scalar twins
 * (suffix _n_ref, a loop over the scalar codec) for every input, NaNs
 * included. They are single-threaded; src and dst must not overlap. */
#ifndef SPARQ_NUM_H
#define SPARQ_NUM_H

#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ BF16, FP16 */

/* FP32 -> BF16 (1-8-7, the upper half of an FP32). Rounds to nearest, ties to
 * even, subnormals included; overflow gives ±inf as in IEEE 754. A NaN stays
 * a NaN with the same sign and the upper 7 payload bits, with the quiet bit
 * (0x0040) set so it cannot become inf. */
uint16_t sparq_bf16_from_f32(float x);
/* BF16 -> FP32, exact: the code becomes the upper half of the float (NaN
 * payloads, signaling or not, are kept bit for bit). */
float sparq_bf16_to_f32(uint16_t h);

/* FP32 -> IEEE binary16 (1-5-10, max 65504). Rounds to nearest, ties to even,
 * subnormals included (smallest 2^-24); overflow (|x| >= 65520) gives ±inf.
 * NaN -> sign | 0x7E00 | upper 9 payload bits, as F16C vcvtps2ph does. */
uint16_t sparq_f16_from_f32(float x);
/* binary16 -> FP32, exact. A NaN is returned quiet (bit 22 set) with its
 * payload and sign, as F16C vcvtph2ps does. */
float sparq_f16_to_f32(uint16_t h);

/* -------------------------------------------------------------------- FP8 */

/* E4M3 "fn" (OCP FP8; bias 7, max 448, min normal 2^-6, min subnormal 2^-9,
 * no infinity, NaN = S.1111.111).
 * FP32 -> E4M3: rounds to nearest, ties to even, subnormals included
 * (|x| <= 2^-10 gives ±0). Saturating: every finite |x| >= 448 gives ±448,
 * and so does ±inf (like CUDA's __NV_SATFINITE), so a scaled tensor never
 * picks up a NaN from an overflow. NaN -> 0x7F with the input's sign bit. */
uint8_t sparq_e4m3_from_f32(float x);
/* E4M3 -> FP32, exact. 0x7F / 0xFF give a quiet NaN with that sign. */
float sparq_e4m3_to_f32(uint8_t c);

/* E5M2 (bias 15, max 57344, min normal 2^-14, min subnormal 2^-16, IEEE-like
 * with inf and NaN).
 * FP32 -> E5M2: rounds to nearest, ties to even, subnormals included.
 * Saturating for finite inputs: every finite |x| >= 57344 gives ±57344
 * (never inf, as COAT's kernels do); ±inf stays ±inf; NaN -> 0x7E with the
 * input's sign bit. */
uint8_t sparq_e5m2_from_f32(float x);
/* E5M2 -> FP32, exact; 0x7C/0xFC are ±inf, 0x7D..0x7F (either sign) give a
 * quiet NaN with that sign. Same as sparq_f16_to_f32(c << 8): E5M2 is the
 * upper byte of a binary16. */
float sparq_e5m2_to_f32(uint8_t c);

/* ------------------------------------------------------- bulk converters */

/* dst[i] = codec(src[i]) for i < n; n == 0 is a no-op (pointers may then be
 * NULL). Same results as the scalar codecs above for every input. */
void sparq_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n);
void sparq_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void sparq_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);
void sparq_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void sparq_f32_to_e4m3_n(const float *src, uint8_t *dst, size_t n);
void sparq_e4m3_to_f32_n(const uint8_t *src, float *dst, size_t n);
void sparq_f32_to_e5m2_n(const float *src, uint8_t *dst, size_t n);
void sparq_e5m2_to_f32_n(const uint8_t *src, float *dst, size_t n);

/* Scalar twins: plain loops over the scalar codecs, the oracle for tests. */
void sparq_f32_to_bf16_n_ref(const float *src, uint16_t *dst, size_t n);
void sparq_bf16_to_f32_n_ref(const uint16_t *src, float *dst, size_t n);
void sparq_f32_to_f16_n_ref(const float *src, uint16_t *dst, size_t n);
void sparq_f16_to_f32_n_ref(const uint16_t *src, float *dst, size_t n);
void sparq_f32_to_e4m3_n_ref(const float *src, uint8_t *dst, size_t n);
void sparq_e4m3_to_f32_n_ref(const uint8_t *src, float *dst, size_t n);
void sparq_f32_to_e5m2_n_ref(const float *src, uint8_t *dst, size_t n);
void sparq_e5m2_to_f32_n_ref(const uint8_t *src, float *dst, size_t n);

/* ---------------------------------------------- symmetric INT quantizers */

/* Symmetric quantization of one group X with `qmax` (127 for INT8, 7 for
 * INT4; any value in 1..127 is accepted):
 *   scale = max|X| / qmax        (FP32 division)
 *   q     = clamp(round_half_even(x / scale), -qmax, qmax)
 *   x'    = q * scale            (dequantize)
 * so |x - x'| <= scale / 2 for every element (plus the FP32 rounding of the
 * division and the product, a few ulps of x).
 *   - An all-zero group gets scale 1, so it dequantizes to exact zeros.
 *   - scale is floored at FLT_MIN (2^-126): a group with max|X| < qmax*2^-126
 *     would otherwise get a subnormal scale, which flush-to-zero turns into 0
 *     (and x/0 into inf). With the floor such a group still quantizes within
 *     scale/2, except that under denormals-are-zero subnormal inputs read as 0.
 *   - Any NaN or ±inf input is rejected with SPARQ_ERR_ARG and a message
 *     naming the function and the first bad index ("x[40] (row 1, col 3) is
 *     NaN"); q and scales are then unspecified.
 *   - Empty input is fine: n == 0 (per tensor) or cols == 0 (per token)
 *     writes scale 1, like an all-zero group.
 * The element values are int8_t for INT4 as well (in -7..7); pack them with
 * sparq_int4_pack for storage.
 *
 * Matrices are row-major, rows x cols. The granularities:
 *   per tensor: one scale for all rows*cols elements (pass rows*cols as n);
 *   per group:  each row is cut into groups of `group` contiguous elements
 *               (the last one is short when group does not divide cols);
 *               scales[r * ngroups + g], ngroups = ceil(cols / group);
 *   per token:  one scale per row (per group with group = cols).
 * AVX-512 kernels run when available; the _ref twins are scalar and give
 * bit-identical q and scales. Single-threaded. */
#define SPARQ_QMAX_INT8 127
#define SPARQ_QMAX_INT4 7

sparq_status sparq_quantize_per_tensor(const float *x, size_t n, int qmax, int8_t *q, float *scale);
sparq_status sparq_quantize_per_group(const float *x, size_t rows, size_t cols, size_t group, int qmax,
                                      int8_t *q, float *scales);
sparq_status sparq_quantize_per_token(const float *x, size_t rows, size_t cols, int qmax, int8_t *q,
                                      float *scales);

sparq_status sparq_quantize_per_tensor_ref(const float *x, size_t n, int qmax, int8_t *q, float *scale);
sparq_status sparq_quantize_per_group_ref(const float *x, size_t rows, size_t cols, size_t group,
                                          int qmax, int8_t *q, float *scales);
sparq_status sparq_quantize_per_token_ref(const float *x, size_t rows, size_t cols, int qmax, int8_t *q,
                                          float *scales);

/* x = q * scale with the layouts above. Fails only on bad arguments (NULL
 * data, group 0, a non-finite scale). */
sparq_status sparq_dequantize_per_tensor(const int8_t *q, size_t n, float scale, float *x);
sparq_status sparq_dequantize_per_group(const int8_t *q, size_t rows, size_t cols, size_t group,
                                        const float *scales, float *x);
sparq_status sparq_dequantize_per_token(const int8_t *q, size_t rows, size_t cols, const float *scales,
                                        float *x);

/* Number of scales per_group needs: rows * ceil(cols / group) (0 on overflow
 * or group == 0). */
size_t sparq_quant_group_count(size_t rows, size_t cols, size_t group);

/* INT4 storage: two values per byte, element 2i in the low nibble and 2i+1
 * in the high nibble, two's complement. packed holds (n + 1) / 2 bytes; for
 * odd n the last high nibble is 0. pack fails (SPARQ_ERR_ARG, naming the
 * index) on a value outside -8..7. */
sparq_status sparq_int4_pack(const int8_t *q, size_t n, uint8_t *packed);
/* Reads n values from (n + 1) / 2 bytes, sign-extending each nibble. */
void sparq_int4_unpack(const uint8_t *packed, size_t n, int8_t *q);

/* ------------------------------------------------ scaled FP8 (COAT, spec
 * coat-fp8.md sections 2 and 4)
 *
 * One group X (a whole tensor, or a run of `group` contiguous elements of a
 * row) is stored as FP8 codes with one FP32 scale:
 *   s  = max(max|X| / FMT_MAX, SPARQ_FP8_SCALE_FLOOR)     (FP32 division)
 *   q  = enc(x / s)                                      (FP32 division)
 *   x' = dec(q) * s                                      (FP32 product)
 * FMT_MAX is 448 (E4M3) or 57344 (E5M2); the floor keeps the scale of an
 * all-zero (or all-tiny) group positive, so x / s never divides by 0. The
 * element of largest magnitude lands on +-FMT_MAX (the encoders saturate,
 * so a quotient that rounds a hair above FMT_MAX still gives +-max).
 *
 * Non-finite inputs. The maxima skip NaN and +-inf: max|X| is the largest
 * FINITE magnitude (0 when there is none), so one bad element cannot turn
 * every scale of a tensor into NaN or inf and wipe out its finite values.
 * The bad elements themselves stay visible: NaN encodes to the format's NaN
 * code (and decodes to NaN), +-inf to +-448 in E4M3 (it has no infinity)
 * and to +-inf in E5M2. The max functions return how many non-finite
 * elements they skipped so a caller can count or reject them.
 *
 * Group Scaling (section 4): the per-tensor max is found in two stages,
 * sparq_fp8_scaled_group_absmax (the max of each 1 x group run, what the
 * producing op emits) and sparq_fp8_scaled_absmax_reduce (the max of those
 * maxima, a pass over a tensor `group` times smaller). Both compare the
 * magnitudes' FP32 bits as integers, so the result is exactly
 * max|X| (sparq_fp8_scaled_absmax), bit for bit, for any size, and does not
 * depend on MXCSR.
 *
 * Layouts: matrices are row-major rows x cols; per-group scales (and group
 * maxima) are [rows, ceil(cols / group)], groups never cross rows, the last
 * group of a row is short when group does not divide cols
 * (sparq_quant_group_count gives the count). Scales are FP32.
 *
 * Every function below picks an AVX-512 kernel at run time
 * (sparq_isa_active()) and has a scalar twin (suffix _ref) with
 * bit-identical results for every input, non-finite ones included. They are
 * single-threaded; inputs and outputs must not overlap (except the in-place
 * sparq_fp8_scaled_round). n == 0 / rows == 0 / cols == 0 are no-ops. */

typedef enum sparq_fp8_format {
  SPARQ_FP8_E4M3 = 0, /* forward activations and weights */
  SPARQ_FP8_E5M2 = 1  /* backward gradients */
} sparq_fp8_format;

#define SPARQ_FP8_ACT_GROUP 16        /* COAT's 1 x 16 groups for non-linear inputs */
#define SPARQ_FP8_SCALE_FLOOR 1e-10f  /* smallest scale (spec section 2) */

/* 448 for E4M3, 57344 for E5M2. */
float sparq_fp8_max(sparq_fp8_format fmt);
/* "e4m3" / "e5m2". */
const char *sparq_fp8_format_name(sparq_fp8_format fmt);
/* The scale of a group with max|X| = amax: max(amax / FMT_MAX, floor); a
 * non-finite or negative amax gives the floor. */
float sparq_fp8_scaled_scale(float amax, sparq_fp8_format fmt);

/* Stage 1: gmax[r * ng + j] = max |x| over the finite elements of group j
 * of row r (0 if none), ng = ceil(cols / group), group >= 1. Returns the
 * number of non-finite elements skipped. */
size_t sparq_fp8_scaled_group_absmax(const float *x, size_t rows, size_t cols, size_t group, float *gmax);
/* Stage 2: the largest of n group maxima (0 for n == 0; non-finite entries
 * are skipped and signs ignored, as in stage 1). */
float sparq_fp8_scaled_absmax_reduce(const float *gmax, size_t n);
/* The direct max|x| over the finite elements of x[0..n) in one pass (what
 * the two stages must equal); *skipped (may be NULL) receives the number of
 * non-finite elements. */
float sparq_fp8_scaled_absmax(const float *x, size_t n, size_t *skipped);

/* q[i] = enc(x[i] / scale) with one scale (scale > 0, finite). */
void sparq_fp8_scaled_quantize(const float *x, size_t n, float scale, sparq_fp8_format fmt, uint8_t *q);
/* x[i] = dec(q[i]) * scale. */
void sparq_fp8_scaled_dequantize(const uint8_t *q, size_t n, float scale, sparq_fp8_format fmt, float *x);
/* In place x[i] = dec(enc(x[i] / scale)) * scale: a quantise-dequantise
 * round trip with nothing stored (COAT's E5M2 gradients). */
void sparq_fp8_scaled_round(float *x, size_t n, float scale, sparq_fp8_format fmt);

/* Per tensor: *scale from the direct max|x|, then q. Returns the number of
 * non-finite elements (kept as described above). */
size_t sparq_fp8_scaled_quantize_tensor(const float *x, size_t n, sparq_fp8_format fmt, uint8_t *q, float *scale);
/* Per group 1 x group along rows: scales [rows, ceil(cols / group)], then q
 * [rows, cols]. Returns the number of non-finite elements. */
size_t sparq_fp8_scaled_quantize_groups(const float *x, size_t rows, size_t cols, size_t group, sparq_fp8_format fmt,
                                        uint8_t *q, float *scales);
/* x = dec(q) * scale of its group, same layouts. */
void sparq_fp8_scaled_dequantize_groups(const uint8_t *q, size_t rows, size_t cols, size_t group,
                                        const float *scales, sparq_fp8_format fmt, float *x);

/* The scalar twins. */
size_t sparq_fp8_scaled_group_absmax_ref(const float *x, size_t rows, size_t cols, size_t group, float *gmax);
float sparq_fp8_scaled_absmax_reduce_ref(const float *gmax, size_t n);
float sparq_fp8_scaled_absmax_ref(const float *x, size_t n, size_t *skipped);
void sparq_fp8_scaled_quantize_ref(const float *x, size_t n, float scale, sparq_fp8_format fmt, uint8_t *q);
void sparq_fp8_scaled_dequantize_ref(const uint8_t *q, size_t n, float scale, sparq_fp8_format fmt, float *x);
void sparq_fp8_scaled_round_ref(float *x, size_t n, float scale, sparq_fp8_format fmt);
size_t sparq_fp8_scaled_quantize_tensor_ref(const float *x, size_t n, sparq_fp8_format fmt, uint8_t *q,
                                            float *scale);
size_t sparq_fp8_scaled_quantize_groups_ref(const float *x, size_t rows, size_t cols, size_t group,
                                            sparq_fp8_format fmt, uint8_t *q, float *scales);
void sparq_fp8_scaled_dequantize_groups_ref(const uint8_t *q, size_t rows, size_t cols, size_t group,
                                            const float *scales, sparq_fp8_format fmt, float *x);

#ifdef __cplusplus
}
#endif
#endif
