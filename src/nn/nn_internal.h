/* Pieces shared by the layer files in src/nn: work splitting for the
 * OpenMP loops, fixed-order row reductions, and the GELU kernels with their
 * constants (the portable twin in gelu.c, the AVX-512 one in gelu_avx512.c).
 *
 * Thread-count independence: every parallel loop below either owns whole
 * rows (per-row reductions run in a fixed lane order), owns a range of
 * columns (column sums run over rows in row order), or works on fixed-size
 * chunks of an elementwise map. None of them combines per-thread partials. */
#ifndef SPARQ_NN_INTERNAL_H
#define SPARQ_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <omp.h>

/* Row kernels are written once in plain C (always inlined) and instantiated
 * twice: portable, and inside an AVX-512 target function where GCC
 * vectorizes the same loops with zmm registers. ISO C mode keeps FP
 * contraction off, so both give the same bits. */
#define NN_INLINE static inline __attribute__((always_inline))
#if defined(SPARQ_HAVE_X86_SIMD) && defined(__clang__)
#define NN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#elif defined(SPARQ_HAVE_X86_SIMD)
/* GCC's default tuning may prefer 256-bit vectors; these loops want zmm */
#define NN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")))
#endif

/* Elementwise maps run in chunks of this many floats (64 KiB): large enough
 * to amortize the loop overhead, small enough to balance two threads. */
#define NN_CHUNK 16384
/* Below this many floats of work a loop stays on the calling thread: a
 * parallel region costs a few microseconds. */
#define NN_PAR_MIN 32768

/* An elementwise kernel on one chunk: out[0..n) from a[0..n) and b[0..n)
 * (b unused by one-input maps; out may alias an input where the kernel says). */
typedef void (*nn_map_fn)(float *out, const float *a, const float *b, size_t n);

/* Runs fn over [0, n) in NN_CHUNK pieces, spread over the OpenMP threads
 * (FTZ/DAZ set in each) when n >= NN_PAR_MIN. The pieces do not depend on
 * the thread count, so neither do the results. A NULL input stays NULL. */
void nn_map_chunks(nn_map_fn fn, float *out, const float *a, const float *b, size_t n);

/* The columns [*c0, *c1) of [0, C) that the calling thread of the current
 * parallel region owns, cut at multiples of 16 so no two threads share a
 * cache line of a 64-byte aligned row. Column sums over rows in row order
 * inside one range give the same bits for any thread count. */
static inline void nn_thread_columns(int64_t C, int64_t *c0, int64_t *c1) {
  const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
  const int64_t groups = (C + 15) / 16;
  const int64_t g0 = groups * id / nt, g1 = groups * (id + 1) / nt;
  *c0 = g0 * 16 < C ? g0 * 16 : C;
  *c1 = g1 * 16 < C ? g1 * 16 : C;
}

/* Lanes of the fixed-order row reductions: lane j sums elements j, j + 16,
 * j + 32, ... and the lanes are combined pairwise in a fixed tree, so the
 * result does not depend on the ISA or the thread count. The lane loops are
 * fully unrolled (NN_EACH_LANE), so GCC's straight-line vectorizer packs the
 * 16 lanes into registers of the target's width (four xmm, or one zmm in
 * the AVX-512 instantiation). Rolled, GCC vectorizes the outer loop through
 * permutes instead; GCC vector types wider than the target are lowered
 * through memory. */
#define NN_LANES 16
#define NN_EACH_LANE(j) _Pragma("GCC unroll 16") for (int j = 0; j < NN_LANES; j++)

NN_INLINE float nn_lanes_combine(float *acc) {
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++) acc[j] += acc[j + 8];
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) acc[j] += acc[j + 4];
  acc[0] += acc[2];
  acc[1] += acc[3];
  return acc[0] + acc[1];
}

/* sum_c x[c] in the fixed lane order. */
NN_INLINE float nn_row_sum(const float *restrict x, int64_t C) {
  float acc[NN_LANES] = {0};
  int64_t c = 0;
  for (; c + NN_LANES <= C; c += NN_LANES) NN_EACH_LANE(j) acc[j] += x[c + j];
  for (int j = 0; c + j < C; j++) acc[j] += x[c + j];
  return nn_lanes_combine(acc);
}

/* ------------------------------------------------------------------ GELU */

/* erfc(a) for a >= 0 in the form of Shepherd and Laframboise, "Chebyshev
 * approximation of (1 + 2x) exp(x^2) erfc x in 0 <= x < inf", Math. Comp. 36
 * (1981): with q = (a - 2) / (a + 2),
 *   erfc(a) = exp(-a^2) (1 + p(q)) / (1 + 2a),
 * p a degree-10 polynomial (Chebyshev fit with mpmath on q in [-1, 2/3], i.e.
 * a in [0, 10]; max error 1.3e-8, about 0.1 ulp of 1 + p). One smooth
 * formula for every a, so the vector code needs no branches; and the
 * relative error stays small where erfc is tiny, which the left tail of
 * GELU (x Phi(x) = x erfc(-x / sqrt 2) / 2) needs.
 * The constants are those of NN_ERFC_SCALE (1 + p(q)): 1 + p lies in
 * [1, 1.29], and scaled by 3/4 it sits at the top of the binade [1/2, 1),
 * where a float's relative rounding error is smallest (half that of the
 * bottom). */
#define NN_ERFC_SCALE 0.75f
#define NN_ERFC_P10 1.523969149e-05f
#define NN_ERFC_P9 -2.819233923e-04f
#define NN_ERFC_P8 -9.388831095e-04f
#define NN_ERFC_P7 9.635507013e-04f
#define NN_ERFC_P6 6.480383687e-03f
#define NN_ERFC_P5 -6.036414299e-03f
#define NN_ERFC_P4 -4.065452516e-02f
#define NN_ERFC_P3 1.230402738e-01f
#define NN_ERFC_P2 -1.245234534e-01f
#define NN_ERFC_P1 -6.957294047e-02f
#define NN_ERFC_P0 9.577338099e-01f /* includes the 1 of 1 + p */

/* exp(r) = 1 + r + r^2 e(r) on |r| <= ln2 / 2 (Chebyshev fit of e, max
 * error 1.5e-9 relative). */
#define NN_EXP_E5 1.989198131e-04f
#define NN_EXP_E4 1.393454193e-03f
#define NN_EXP_E3 8.333310024e-03f
#define NN_EXP_E2 4.166645681e-02f
#define NN_EXP_E1 1.666666668e-01f
#define NN_EXP_E0 5.000000014e-01f

/* Cody-Waite reduction y = n ln2 + r of the exponentials, ln2 split so
 * n * NN_LN2_HI is exact. */
#define NN_LOG2E 1.44269504088896341f
#define NN_LN2_HI 0.693359375f
#define NN_LN2_LO -2.12194440e-4f

/* Beyond |x| > NN_GELU_BIG the result is x (x > 0) or -0 (x < 0): Phi(x) is
 * 1 in float from x = 5.3 on, and x Phi(x) is below the smallest normal
 * float from x = -13.2 down (the portable twin switches there). The vector
 * code clamps x to +-NN_GELU_CLAMP instead, where exp(-x^2 / 2) is 0 even
 * without FTZ, so its formulas give x and -0 beyond without a blend. */
#define NN_GELU_BIG 14.0f
#define NN_GELU_CLAMP 15.0f

/* The kernels behind sparq_nn_gelu_forward / backward on one chunk. */
void nn_gelu_forward_portable(float *out, const float *inp, const float *unused, size_t n);
void nn_gelu_backward_portable(float *dinp, const float *inp, const float *dout, size_t n);
#ifdef SPARQ_HAVE_X86_SIMD
void nn_gelu_forward_avx512(float *out, const float *inp, const float *unused, size_t n);
void nn_gelu_backward_avx512(float *dinp, const float *inp, const float *dout, size_t n);
/* One cross-entropy row: *max = max_c x[c], returns s = sum_c exp(x[c] - max)
 * (in the lane order above) and, when probs != NULL, writes the softmax
 * probs[c] = exp(x[c] - max) / s. */
float nn_softmax_row_avx512(float *probs, const float *x, int64_t V, float *max);
#endif

#endif
