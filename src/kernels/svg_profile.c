/* Online profiling of one Sparse VideoGen head (spec §3): t sampled query
 * rows, their scores against all keys once, and the full, spatial-masked and
 * temporal-masked outputs.
 *
 * The masks come from svg_keys_of (the kernel's own key intervals): the
 * spatial set of a row directly, the temporal set in the permuted layout
 * mapped back to frame-major rows. They are written as two bits per
 * (key, row) into a [S, t] byte map, so nothing of size S x S exists.
 *
 * The t rows are processed together, as 3t "virtual rows" (full, spatial and
 * temporal for each sampled row), in four passes: scores [S, t], row maxima
 * per mask, weights W [S, 3t] with their sums, and O = W^T V. Each pass has
 * a plain-C version (the reference, the portable build, and an AVX2 build
 * where the compiler vectorizes it) and an AVX-512 version with intrinsics
 * that performs, lane by lane, the same IEEE operations in the same order
 * (ISO C forbids FMA contraction, so every product and sum is rounded
 * separately in all versions; the exp is the same polynomial; zero weights
 * are skipped by both), so every ISA gives bit-identical errors and
 * decisions. (Fused multiply-adds would save about 10% of the AVX-512 time
 * but make the portable build call libm's fmaf, 10x slower.) */
#include <math.h>
#include <string.h>

#include "kernels/svg_internal.h"
#include "sparq/base.h"

enum { BIT_SPATIAL = 1, BIT_TEMPORAL = 2 };

#define SVG_LOG2E 1.44269504088896340736f
#define SVG_EXP_C6 1.535336188319500e-4f
#define SVG_EXP_C5 1.339887440266574e-3f
#define SVG_EXP_C4 9.618437357674640e-3f
#define SVG_EXP_C3 5.550332471162809e-2f
#define SVG_EXP_C2 2.402264791363012e-1f
#define SVG_EXP_C1 6.931472028550421e-1f

/* e^x for x <= 0 (the callers' s - max): 2^n times a degree-6 polynomial of
 * the fraction, relative error ~2e-7. Arguments below about -87 (and NaN)
 * give about 2^-126 (0 under flush-to-zero), never a non-finite value, so a
 * masked lane can be computed and dropped. exp16 repeats these operations
 * exactly. */
static inline __attribute__((always_inline)) float svg_exp(float x) {
  const float t0 = x * SVG_LOG2E;
  const float lo = t0 > -126.0f ? t0 : -126.0f;
  const float t = lo < 0.0f ? lo : 0.0f;
  const int n = (int)(t - 0.5f); /* t <= 0: rounds to nearest, half down */
  const float f = t - (float)n;  /* in [-0.5, 0.5] */
  float p = SVG_EXP_C6;
  p = p * f + SVG_EXP_C5;
  p = p * f + SVG_EXP_C4;
  p = p * f + SVG_EXP_C3;
  p = p * f + SVG_EXP_C2;
  p = p * f + SVG_EXP_C1;
  p = p * f + 1.0f;
  union {
    uint32_t u;
    float f;
  } scale = {(uint32_t)(n + 127) << 23};
  return p * scale.f;
}

typedef struct prof_job {
  int64_t S, t, d;
  const float *k, *v;        /* [S, d] */
  const float *qt;           /* [d, t] scaled sampled queries, transposed */
  const unsigned char *bits; /* [S, t] */
  float *sc;                 /* [S, t] scores */
  float *m, *l;              /* [3t]: maxima and softmax sums, full | spatial | temporal */
  float *w;                  /* [S, 3t] weights, 0 outside the mask */
  float *acc;                /* [3t, d] unnormalized outputs */
} prof_job;

/* ------------------------------------------------------ plain C passes */

static inline __attribute__((always_inline)) void scores_c(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t, d = jb->d;
  for (int64_t j = 0; j < S; j++) {
    float *restrict s = jb->sc + j * t;
    const float *restrict kj = jb->k + j * d;
    for (int64_t r = 0; r < t; r++) s[r] = 0.0f;
    for (int64_t c = 0; c < d; c++) {
      const float kc = kj[c];
      const float *restrict q = jb->qt + c * t;
      for (int64_t r = 0; r < t; r++) s[r] += q[r] * kc;
    }
  }
}

static inline __attribute__((always_inline)) void maxima_c(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t;
  float *restrict mf = jb->m, *restrict ms = jb->m + t, *restrict mt = jb->m + 2 * t;
  for (int64_t r = 0; r < t; r++) mf[r] = ms[r] = mt[r] = -INFINITY;
  for (int64_t j = 0; j < S; j++) {
    const float *restrict s = jb->sc + j * t;
    const unsigned char *restrict b = jb->bits + j * t;
    for (int64_t r = 0; r < t; r++) {
      const float x = s[r];
      const float xs = (b[r] & BIT_SPATIAL) ? x : -INFINITY, xt = (b[r] & BIT_TEMPORAL) ? x : -INFINITY;
      mf[r] = x > mf[r] ? x : mf[r];
      ms[r] = xs > ms[r] ? xs : ms[r];
      mt[r] = xt > mt[r] ? xt : mt[r];
    }
  }
}

static inline __attribute__((always_inline)) void weights_c(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t;
  const float *restrict m = jb->m;
  float *restrict l = jb->l;
  for (int64_t r = 0; r < 3 * t; r++) l[r] = 0.0f;
  for (int64_t j = 0; j < S; j++) {
    const float *restrict s = jb->sc + j * t;
    const unsigned char *restrict b = jb->bits + j * t;
    float *restrict w = jb->w + j * 3 * t;
    for (int64_t r = 0; r < t; r++) {
      const float x = s[r];
      const float ef = svg_exp(x - m[r]), es = svg_exp(x - m[t + r]), et = svg_exp(x - m[2 * t + r]);
      w[r] = ef;
      w[t + r] = (b[r] & BIT_SPATIAL) ? es : 0.0f;
      w[2 * t + r] = (b[r] & BIT_TEMPORAL) ? et : 0.0f;
      l[r] += w[r];
      l[t + r] += w[t + r];
      l[2 * t + r] += w[2 * t + r];
    }
  }
}

/* acc[x] = sum over j in order of w[j, x] v_j, terms with w = 0 skipped */
static inline __attribute__((always_inline)) void pv_c(const prof_job *jb) {
  const int64_t S = jb->S, n = 3 * jb->t, d = jb->d;
  float *restrict acc = jb->acc;
  for (int64_t x = 0; x < n * d; x++) acc[x] = 0.0f;
  for (int64_t j = 0; j < S; j++) {
    const float *restrict w = jb->w + j * n, *restrict vj = jb->v + j * d;
    for (int64_t x = 0; x < n; x++) {
      const float wx = w[x];
      if (wx == 0.0f) continue;
      float *restrict o = acc + x * d;
      for (int64_t c = 0; c < d; c++) o[c] += wx * vj[c];
    }
  }
}

static inline __attribute__((always_inline)) void profile_c(const prof_job *jb) {
  scores_c(jb);
  maxima_c(jb);
  weights_c(jb);
  pv_c(jb);
}

static void profile_scalar(const prof_job *jb) { profile_c(jb); }

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static void profile_avx2(const prof_job *jb) { profile_c(jb); }

/* ------------------------------------------------------ AVX-512 passes */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

TARGET_AVX512 static inline __mmask16 tail16(int64_t n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* Scores, 16 rows x 8 keys per register block; each lane adds q_c k_c for
 * c = 0, 1, ... in order, one multiply and one add, as scores_c. */
TARGET_AVX512 static void scores_avx512(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t, d = jb->d;
  for (int64_t r = 0; r < t; r += 16) {
    const __mmask16 k = tail16(t - r);
    int64_t j = 0;
    for (; j + 8 <= S; j += 8) {
      const float *kj = jb->k + j * d;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
      for (int64_t c = 0; c < d; c++) {
        const __m512 q = _mm512_maskz_loadu_ps(k, jb->qt + c * t + r);
        a0 = _mm512_add_ps(a0, _mm512_mul_ps(q, _mm512_set1_ps(kj[c])));
        a1 = _mm512_add_ps(a1, _mm512_mul_ps(q, _mm512_set1_ps(kj[d + c])));
        a2 = _mm512_add_ps(a2, _mm512_mul_ps(q, _mm512_set1_ps(kj[2 * d + c])));
        a3 = _mm512_add_ps(a3, _mm512_mul_ps(q, _mm512_set1_ps(kj[3 * d + c])));
        a4 = _mm512_add_ps(a4, _mm512_mul_ps(q, _mm512_set1_ps(kj[4 * d + c])));
        a5 = _mm512_add_ps(a5, _mm512_mul_ps(q, _mm512_set1_ps(kj[5 * d + c])));
        a6 = _mm512_add_ps(a6, _mm512_mul_ps(q, _mm512_set1_ps(kj[6 * d + c])));
        a7 = _mm512_add_ps(a7, _mm512_mul_ps(q, _mm512_set1_ps(kj[7 * d + c])));
      }
      float *s = jb->sc + j * t + r;
      _mm512_mask_storeu_ps(s, k, a0), _mm512_mask_storeu_ps(s + t, k, a1);
      _mm512_mask_storeu_ps(s + 2 * t, k, a2), _mm512_mask_storeu_ps(s + 3 * t, k, a3);
      _mm512_mask_storeu_ps(s + 4 * t, k, a4), _mm512_mask_storeu_ps(s + 5 * t, k, a5);
      _mm512_mask_storeu_ps(s + 6 * t, k, a6), _mm512_mask_storeu_ps(s + 7 * t, k, a7);
    }
    for (; j < S; j++) {
      const float *kj = jb->k + j * d;
      __m512 a0 = _mm512_setzero_ps();
      for (int64_t c = 0; c < d; c++)
        a0 = _mm512_add_ps(a0, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, jb->qt + c * t + r), _mm512_set1_ps(kj[c])));
      _mm512_mask_storeu_ps(jb->sc + j * t + r, k, a0);
    }
  }
}

/* The mask bits of 16 rows as two lane masks. */
TARGET_AVX512 static inline void bits16(const unsigned char *b, __mmask16 k, __mmask16 *ks, __mmask16 *kt) {
  const __m512i bits = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, b));
  *ks = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(BIT_SPATIAL));
  *kt = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(BIT_TEMPORAL));
}

/* max_ps(x, m) returns x when x > m and m otherwise (NaN x included): the
 * scalar x > m ? x : m. */
TARGET_AVX512 static void maxima_avx512(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t;
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t r = 0; r < t; r += 16) {
    const __mmask16 k = tail16(t - r);
    __m512 mf = ninf, ms = ninf, mt = ninf;
    for (int64_t j = 0; j < S; j++) {
      const __m512 x = _mm512_maskz_loadu_ps(k, jb->sc + j * t + r);
      __mmask16 ks, kt;
      bits16(jb->bits + j * t + r, k, &ks, &kt);
      mf = _mm512_max_ps(x, mf);
      ms = _mm512_max_ps(_mm512_mask_blend_ps(ks, ninf, x), ms);
      mt = _mm512_max_ps(_mm512_mask_blend_ps(kt, ninf, x), mt);
    }
    _mm512_mask_storeu_ps(jb->m + r, k, mf);
    _mm512_mask_storeu_ps(jb->m + t + r, k, ms);
    _mm512_mask_storeu_ps(jb->m + 2 * t + r, k, mt);
  }
}

/* svg_exp on 16 lanes, the same operations in the same order: max_ps and
 * min_ps return their second operand for NaN and equal inputs, as the
 * scalar ternaries do; cvttps truncates like the cast. */
TARGET_AVX512 static inline __m512 exp16(__m512 x) {
  const __m512 t0 = _mm512_mul_ps(x, _mm512_set1_ps(SVG_LOG2E));
  const __m512 t = _mm512_min_ps(_mm512_max_ps(t0, _mm512_set1_ps(-126.0f)), _mm512_setzero_ps());
  const __m512i n = _mm512_cvttps_epi32(_mm512_sub_ps(t, _mm512_set1_ps(0.5f)));
  const __m512 f = _mm512_sub_ps(t, _mm512_cvtepi32_ps(n));
  __m512 p = _mm512_set1_ps(SVG_EXP_C6);
  p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(SVG_EXP_C5));
  p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(SVG_EXP_C4));
  p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(SVG_EXP_C3));
  p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(SVG_EXP_C2));
  p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(SVG_EXP_C1));
  p = _mm512_add_ps(_mm512_mul_ps(p, f), _mm512_set1_ps(1.0f));
  const __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
  return _mm512_mul_ps(p, scale);
}

TARGET_AVX512 static void weights_avx512(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t;
  for (int64_t r = 0; r < t; r += 16) {
    const __mmask16 k = tail16(t - r);
    const __m512 mf = _mm512_maskz_loadu_ps(k, jb->m + r), ms = _mm512_maskz_loadu_ps(k, jb->m + t + r),
                 mt = _mm512_maskz_loadu_ps(k, jb->m + 2 * t + r);
    __m512 lf = _mm512_setzero_ps(), ls = lf, lt = lf;
    for (int64_t j = 0; j < S; j++) {
      const __m512 x = _mm512_maskz_loadu_ps(k, jb->sc + j * t + r);
      __mmask16 ks, kt;
      bits16(jb->bits + j * t + r, k, &ks, &kt);
      const __m512 wf = exp16(_mm512_sub_ps(x, mf));
      const __m512 ws = _mm512_maskz_mov_ps(ks, exp16(_mm512_sub_ps(x, ms)));
      const __m512 wt = _mm512_maskz_mov_ps(kt, exp16(_mm512_sub_ps(x, mt)));
      float *w = jb->w + j * 3 * t + r;
      _mm512_mask_storeu_ps(w, k, wf);
      _mm512_mask_storeu_ps(w + t, k, ws);
      _mm512_mask_storeu_ps(w + 2 * t, k, wt);
      lf = _mm512_add_ps(lf, wf), ls = _mm512_add_ps(ls, ws), lt = _mm512_add_ps(lt, wt);
    }
    _mm512_mask_storeu_ps(jb->l + r, k, lf);
    _mm512_mask_storeu_ps(jb->l + t + r, k, ls);
    _mm512_mask_storeu_ps(jb->l + 2 * t + r, k, lt);
  }
}

/* O = W^T V in tiles of 4 virtual rows x 64 columns held in 16 registers,
 * over key blocks of 64 (the V block stays in L1 across the row tiles);
 * per element the same j order and the same skipped zero weights as pv_c. */
enum { PV_ROWS = 4, PV_KEYS = 64 };

/* One tile: virtual rows x0 .. x0 + rows - 1, columns c0 .. c0 + 63 (masks
 * kc), keys j0 .. j1 - 1. rows is a constant after inlining, so the tile
 * lives in registers. */
TARGET_AVX512 static inline __attribute__((always_inline)) void pv_tile(const prof_job *jb, int64_t x0, const int rows,
                                                                       int64_t c0, const __mmask16 *kc, int64_t j0,
                                                                       int64_t j1) {
  const int64_t n = 3 * jb->t, d = jb->d;
  __m512 a[PV_ROWS][4];
#pragma GCC unroll 4
  for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) a[r][i] = _mm512_maskz_loadu_ps(kc[i], jb->acc + (x0 + r) * d + c0 + 16 * i);
  for (int64_t j = j0; j < j1; j++) {
    const float *vj = jb->v + j * d + c0, *w = jb->w + j * n + x0;
    const __m512 v0 = _mm512_maskz_loadu_ps(kc[0], vj), v1 = _mm512_maskz_loadu_ps(kc[1], vj + 16),
                 v2 = _mm512_maskz_loadu_ps(kc[2], vj + 32), v3 = _mm512_maskz_loadu_ps(kc[3], vj + 48);
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++) {
      if (w[r] == 0.0f) continue;
      const __m512 wr = _mm512_set1_ps(w[r]);
      a[r][0] = _mm512_add_ps(a[r][0], _mm512_mul_ps(wr, v0));
      a[r][1] = _mm512_add_ps(a[r][1], _mm512_mul_ps(wr, v1));
      a[r][2] = _mm512_add_ps(a[r][2], _mm512_mul_ps(wr, v2));
      a[r][3] = _mm512_add_ps(a[r][3], _mm512_mul_ps(wr, v3));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) _mm512_mask_storeu_ps(jb->acc + (x0 + r) * d + c0 + 16 * i, kc[i], a[r][i]);
}

TARGET_AVX512 static void pv_avx512(const prof_job *jb) {
  const int64_t S = jb->S, n = 3 * jb->t, d = jb->d;
  memset(jb->acc, 0, (size_t)(n * d) * sizeof(float));
  for (int64_t j0 = 0; j0 < S; j0 += PV_KEYS) {
    const int64_t j1 = j0 + PV_KEYS < S ? j0 + PV_KEYS : S;
    for (int64_t c0 = 0; c0 < d; c0 += 64) {
      __mmask16 kc[4];
      for (int i = 0; i < 4; i++) kc[i] = c0 + 16 * i < d ? tail16(d - c0 - 16 * i) : 0;
      int64_t x0 = 0;
      for (; x0 + PV_ROWS <= n; x0 += PV_ROWS) pv_tile(jb, x0, PV_ROWS, c0, kc, j0, j1);
      for (; x0 < n; x0++) pv_tile(jb, x0, 1, c0, kc, j0, j1);
    }
  }
}

TARGET_AVX512 static void profile_avx512(const prof_job *jb) {
  scores_avx512(jb);
  maxima_avx512(jb);
  weights_avx512(jb);
  pv_avx512(jb);
}
#endif

static void profile_run(const prof_job *jb) {
#ifdef SPARQ_HAVE_X86_SIMD
  const sparq_isa isa = sparq_isa_active();
  if (isa >= SPARQ_ISA_AVX512) return profile_avx512(jb);
  if (isa >= SPARQ_ISA_AVX2) return profile_avx2(jb);
#endif
  profile_scalar(jb);
}

/* Scratch sections, each rounded up to 16 floats (one cache line). */
typedef struct prof_plan {
  size_t rows, bits, sc, qt, acc, ml, w, total; /* offsets in floats; total */
} prof_plan;

static bool section(size_t *at, size_t floats, size_t *offset) {
  size_t rounded;
  if (!sparq_size_add(floats, 15, &rounded)) return false;
  rounded &= ~(size_t)15;
  *offset = *at;
  return sparq_size_add(*at, rounded, at);
}

static bool plan_make(int64_t S, int64_t t, int64_t d, prof_plan *p) {
  size_t at = 0, st, st3, td, tdd, bytes_floats;
  if (S < 1 || t < 1 || d < 1) return false;
  if (!sparq_size_mul((size_t)S, (size_t)t, &st) || !sparq_size_mul((size_t)t, (size_t)d, &td) ||
      !sparq_size_mul(td, 3, &tdd) || !sparq_size_mul(st, 3, &st3) || !sparq_size_add(st, 3, &bytes_floats))
    return false;
  return section(&at, 2 * (size_t)t, &p->rows) /* int64 row indices */
         && section(&at, bytes_floats / 4, &p->bits) && section(&at, st, &p->sc) && section(&at, td, &p->qt) &&
         section(&at, tdd, &p->acc) && section(&at, 6 * (size_t)t, &p->ml) && section(&at, st3, &p->w) &&
         (p->total = at, true);
}

size_t svg_profile_scratch_floats(const svg_geom *g, int64_t t, int64_t d) {
  prof_plan p;
  if (!g || t > (int64_t)(SIZE_MAX / 8) || !plan_make(g->S, t, d, &p)) return 0;
  return p.total;
}

static int64_t ceil_div(int64_t a, int64_t b) { /* b > 0, any a */
  const int64_t q = a / b;
  return q * b < a ? q + 1 : q;
}

/* Sets `bit` of row r for the keys of rows [a, b) of the current layout of
 * `head`, written at their frame-major rows. A token-major range [ua, ub)
 * holds, in each frame f, the positions p with ua <= p F + f < ub: one run
 * of frame-major rows per frame, found without a division per key. */
static void mark_range(const svg_geom *g, sparq_svg_head head, int64_t a, int64_t b, unsigned char *bits, int64_t t,
                       int64_t r, unsigned char bit) {
  const int64_t va = a > g->voff ? a : g->voff, vb = b < g->voff + g->Sv ? b : g->voff + g->Sv;
  if (head != SPARQ_SVG_TEMPORAL || va >= vb) {
    for (int64_t x = a; x < b; x++) bits[x * t + r] |= bit;
    return;
  }
  for (int64_t x = a; x < va; x++) bits[x * t + r] |= bit; /* text before the video rows */
  for (int64_t x = vb; x < b; x++) bits[x * t + r] |= bit; /* and after */
  const int64_t ua = va - g->voff, ub = vb - g->voff;
  for (int64_t f = 0; f < g->F; f++) {
    int64_t p0 = ceil_div(ua - f, g->F), p1 = ceil_div(ub - f, g->F);
    p0 = p0 < 0 ? 0 : p0, p1 = p1 > g->P ? g->P : p1;
    for (int64_t p = p0; p < p1; p++) bits[(g->voff + f * g->P + p) * t + r] |= bit;
  }
}

/* Marks every key of `keys` (current layout of `head`) for row r. */
static void mark(const svg_geom *g, sparq_svg_head head, const svg_keys *keys, unsigned char *bits, int64_t t,
                 int64_t r, unsigned char bit) {
  for (int s = 0; s < keys->nseg; s++) mark_range(g, head, keys->seg[s].a, keys->seg[s].b, bits, t, r, bit);
  for (int s = 0; s < keys->nf0; s++)
    for (int64_t p = keys->f0[s].a; p < keys->f0[s].b; p++) bits[(g->voff + p) * t + r] |= bit;
}

sparq_status svg_profile(const sparq_svg_options *opts, const svg_geom *g, const float *q, const float *k,
                         const float *v, int64_t d, float sm_scale, uint64_t stream, float *scratch,
                         svg_profile_result *out) {
  const char *who = "svg_profile";
  sparq_status st = svg_check_options(opts, who);
  if (st != SPARQ_OK) return st;
  if (!g || !q || !k || !v || !out) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL argument", who);
  if (g->F != opts->frames || g->P != opts->frame_tokens || g->L != opts->text_tokens || g->S != g->L + g->F * g->P)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the geometry does not match the options", who);
  if (d < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: d %lld must be >= 1", who, (long long)d);
  if (!(sm_scale >= 0.0f && isfinite(sm_scale)))
    return sparq_fail(SPARQ_ERR_ARG, "%s: sm_scale %g must be finite and >= 0", who, (double)sm_scale);
  const int64_t S = g->S, t = opts->profile_rows;
  prof_plan plan;
  if (t > (int64_t)(SIZE_MAX / 8) || !plan_make(S, t, d, &plan))
    return sparq_fail(SPARQ_ERR_ARG, "%s: scratch for S %lld, t %lld, d %lld overflows", who, (long long)S,
                      (long long)t, (long long)d);
  float *own = NULL;
  if (!scratch) {
    own = scratch = sparq_alloc(plan.total * sizeof(float), "svg_profile scratch");
    if (!own) return SPARQ_ERR_NOMEM;
  }
  int64_t *rows = (int64_t *)(void *)(scratch + plan.rows);
  unsigned char *bits = (unsigned char *)(scratch + plan.bits);
  const float scale = sm_scale > 0.0f ? sm_scale : (float)(1.0 / sqrt((double)d));

  /* the sampled rows and their masks */
  sparq_rng rng = sparq_rng_make(opts->seed, stream);
  const int64_t range = S < SVG_PROFILE_MAX_ROW ? S : SVG_PROFILE_MAX_ROW;
  for (int64_t r = 0; r < t; r++) rows[r] = (int64_t)sparq_rng_below(&rng, (uint64_t)range);
  memset(bits, 0, (size_t)S * (size_t)t);
  svg_keys keys;
  for (int64_t r = 0; r < t; r++) {
    svg_keys_of(g, SPARQ_SVG_SPATIAL, rows[r], &keys);
    mark(g, SPARQ_SVG_SPATIAL, &keys, bits, t, r, BIT_SPATIAL);
    svg_keys_of(g, SPARQ_SVG_TEMPORAL, svg_to_current(g, SPARQ_SVG_TEMPORAL, rows[r]), &keys);
    mark(g, SPARQ_SVG_TEMPORAL, &keys, bits, t, r, BIT_TEMPORAL);
  }
  float *qt = scratch + plan.qt;
  for (int64_t c = 0; c < d; c++)
    for (int64_t r = 0; r < t; r++) qt[c * t + r] = q[rows[r] * d + c] * scale;

  prof_job jb = {.S = S, .t = t, .d = d, .k = k, .v = v, .qt = qt, .bits = bits, .sc = scratch + plan.sc,
                 .m = scratch + plan.ml, .l = scratch + plan.ml + 3 * t, .w = scratch + plan.w,
                 .acc = scratch + plan.acc};
  profile_run(&jb);

  /* O_m = acc_m / l_m (an empty mask gives 0), errors against O_full */
  double err[2] = {0.0, 0.0};
  for (int64_t r = 0; r < t; r++) {
    const float lf = jb.l[r] > 0.0f ? jb.l[r] : 1.0f, *of = jb.acc + r * d;
    for (int m = 0; m < 2; m++) {
      const float lm = jb.l[(1 + m) * t + r], *om = jb.acc + ((1 + m) * t + r) * d;
      double e = 0.0;
      for (int64_t c = 0; c < d; c++) {
        const double full = (double)of[c] / (double)lf, mine = lm > 0.0f ? (double)om[c] / (double)lm : 0.0;
        e += (mine - full) * (mine - full);
      }
      err[m] += e;
    }
  }
  out->err_spatial = err[0] / ((double)t * (double)d);
  out->err_temporal = err[1] / ((double)t * (double)d);
  out->head = out->err_temporal < out->err_spatial ? SPARQ_SVG_TEMPORAL : SPARQ_SVG_SPATIAL;
  sparq_free(own);
  return SPARQ_OK;
}
