/* AVX-512 row of the softmax cross-entropy: max, exp(x - max) and its sum,
 * and the normalized softmax, 16 logits per step. exp is the classic
 * Cody-Waite reduction and a degree-7 polynomial (about 1 ulp). */
#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
#include <math.h>

#include "nn/nn_internal.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define INLINE static inline __attribute__((always_inline))

/* exp(y) for y <= 0: y = n ln2 + r, exp(r) = 1 + r + r^2 e(r), times 2^n by
 * vscalefps (0 or a subnormal below the normal range). max(-104, y) keeps
 * the reduction finite for -inf and keeps a NaN (vmaxps returns its second
 * operand when either is NaN). */
TARGET INLINE __m512 exp_nonpos(__m512 y) {
  y = _mm512_max_ps(_mm512_set1_ps(-104.0f), y);
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(NN_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(NN_LN2_HI), y);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(NN_LN2_LO), r);
  __m512 p = _mm512_set1_ps(NN_EXP_E5);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_E4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_E3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_E2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_E1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_E0));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

TARGET INLINE __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1); }

TARGET float nn_softmax_row_avx512(float *probs, const float *x, int64_t V, float *max) {
  int64_t c = 0;
  /* max (a NaN logit is skipped here; it makes the sum NaN below) */
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (; c + 16 <= V; c += 16) mx = _mm512_max_ps(_mm512_loadu_ps(x + c), mx);
  if (c < V) mx = _mm512_mask_max_ps(mx, tail_mask(V - c), _mm512_maskz_loadu_ps(tail_mask(V - c), x + c), mx);
  const float m = _mm512_reduce_max_ps(mx);
  *max = m;

  /* exp(x - max) and the sum, lane j holding elements j, j + 16, ... */
  const __m512 vm = _mm512_set1_ps(m);
  __m512 acc = _mm512_setzero_ps();
  for (c = 0; c + 16 <= V; c += 16) {
    const __m512 e = exp_nonpos(_mm512_sub_ps(_mm512_loadu_ps(x + c), vm));
    if (probs) _mm512_storeu_ps(probs + c, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (c < V) {
    const __mmask16 k = tail_mask(V - c);
    const __m512 e = _mm512_maskz_mov_ps(k, exp_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), vm)));
    if (probs) _mm512_mask_storeu_ps(probs + c, k, e);
    acc = _mm512_add_ps(acc, e);
  }
  float lanes[NN_LANES];
  _mm512_storeu_ps(lanes, acc);
  const float s = nn_lanes_combine(lanes);

  if (probs) {
    const __m512 vs = _mm512_set1_ps(s);
    for (c = 0; c + 16 <= V; c += 16) _mm512_storeu_ps(probs + c, _mm512_div_ps(_mm512_loadu_ps(probs + c), vs));
    if (c < V) {
      const __mmask16 k = tail_mask(V - c);
      _mm512_mask_storeu_ps(probs + c, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, probs + c), vs));
    }
  }
  return s;
}
#endif /* SPARQ_HAVE_X86_SIMD */
