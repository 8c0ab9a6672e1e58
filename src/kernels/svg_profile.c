/* Online profiling of one Sparse VideoGen head (spec §3): t sampled query
 * rows, their scores against all keys once, and the full, spatial-masked and
 * temporal-masked outputs.
 *
 * The masks come from svg_keys_of (the kernel's own key intervals): the
 * spatial set of a row directly, the temporal set in the permuted layout
 * mapped back to frame-major rows. They are written as two bits per
 * (row, key) into a [t, S] byte map, so nothing of size S x S exists.
 *
 * Every key of a sampled row falls in one of four groups by its two bits:
 * neither mask, spatial only, temporal only, both. One pass over the keys
 * per row accumulates w = e^(s - max) and w v into its group's sums l_g and
 * U_g; then full = (U0 + U1 + U2 + U3) / (l0 + l1 + l2 + l3), spatial =
 * (U1 + U3) / (l1 + l3), temporal = (U2 + U3) / (l2 + l3) (the masks'
 * softmax constants cancel in the quotients, so the row's full maximum
 * serves all three). That is one exponential and one V row per (row, key),
 * read in runs of one group, where separate full, spatial and temporal
 * passes cost three exponentials and 1.6 V rows, each behind a
 * data-dependent branch. A mask whose keys all sit more than about 87 below
 * the row's maximum sums to 0 and counts as empty (output 0), as a mask
 * without keys does: either way it misses all of the row's mass.
 *
 * Passes: scores [S, t] (16 rows x 8 keys per register block), their
 * transpose [t, S], each row's maximum and weights (in place), then the
 * grouped sums over blocks of SUM_KEYS keys, every row adding its runs of
 * one group in the block. Each pass has a plain-C version (the reference,
 * the portable build, and an AVX2 build where the compiler vectorizes it)
 * and an AVX-512 version with intrinsics that performs, lane by lane, the
 * same IEEE operations in the same order: the score and weighted-V sums are
 * fused multiply-adds (fmaf in C, one rounding each; the portable build
 * reaches it through libm), the exp is the same polynomial of separate
 * products and sums, zero weights are skipped by both, and the keys at
 * even and odd offsets of a run are summed apart in both. So every ISA
 * gives bit-identical errors and decisions. */
#include <math.h>
#include <string.h>

#include "kernels/svg_internal.h"
#include "sparq/base.h"

enum { BIT_SPATIAL = 1, BIT_TEMPORAL = 2, GROUPS = 4 }; /* a key's group is its two bits */

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
  const unsigned char *bits; /* [t, S] */
  float *sc;                 /* [S, t] scores */
  float *sct;                /* [t, S] the same, transposed, then each row's weights */
  float *l;                  /* [t, GROUPS] sums of the weights per group */
  float *acc;                /* [t, GROUPS, d] sums of w v per group */
} prof_job;

/* Keys per block of the grouped sums: the block's V rows stay in L1 while
 * every sampled row adds its runs of them (the rows read V once per block
 * between them, not once each). */
enum { SUM_KEYS = 64 };

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
      for (int64_t r = 0; r < t; r++) s[r] = fmaf(q[r], kc, s[r]);
    }
  }
}

/* Row r's scores become e^(s - max) in place; the max is exact in any order
 * (a NaN score is never the max, as in max_ps). */
static inline __attribute__((always_inline)) void weights_c(const prof_job *jb, int64_t r) {
  const int64_t S = jb->S;
  float *restrict s = jb->sct + r * S;
  float m = -INFINITY;
  for (int64_t j = 0; j < S; j++) m = s[j] > m ? s[j] : m;
  for (int64_t j = 0; j < S; j++) s[j] = svg_exp(s[j] - m);
}

/* U_g += w_j v_j and l_g += w_j over the run's keys, zero weights skipped
 * (l only with the first columns, c0 = 0), for the columns [c0, c1) (at most
 * 64). The keys at even and at odd offsets in the run are summed apart, in
 * order, and then added to U_g as U_g + (even + odd): two independent add
 * chains, which the vector version needs to hide the add latency. */
static inline __attribute__((always_inline)) void run_sums_c(const prof_job *jb, const float *w, int64_t a,
                                                             int64_t b, float *acc, float *l, int64_t c0, int64_t c1) {
  const int64_t d = jb->d;
  float even[64] = {0}, odd[64] = {0}, le = 0.0f, lo = 0.0f;
  for (int64_t j = a; j < b; j++) {
    const float wj = w[j];
    if (wj == 0.0f) continue;
    const float *restrict vj = jb->v + j * d + c0;
    float *restrict s = (j - a) & 1 ? odd : even;
    if ((j - a) & 1) lo += wj;
    else le += wj;
    for (int64_t c = 0; c < c1 - c0; c++) s[c] = fmaf(wj, vj[c], s[c]);
  }
  for (int64_t c = 0; c < c1 - c0; c++) acc[c0 + c] += even[c] + odd[c];
  if (c0 == 0) *l += le + lo;
}

/* ------------------------------------------------------ shared pieces */

/* The end of the run of one group that starts at key j, within [j, end). */
static inline int64_t run_end(const unsigned char *b, int64_t j, int64_t end) {
  int64_t e = j + 1;
  while (e < end && b[e] == b[j]) e++;
  return e;
}

static void transpose_scores(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t;
  for (int64_t j0 = 0; j0 < S; j0 += 64) {
    const int64_t j1 = j0 + 64 < S ? j0 + 64 : S;
    for (int64_t r = 0; r < t; r++)
      for (int64_t j = j0; j < j1; j++) jb->sct[r * S + j] = jb->sc[j * t + r];
  }
}

static inline __attribute__((always_inline)) void profile_c(const prof_job *jb) {
  scores_c(jb);
  transpose_scores(jb);
  const int64_t S = jb->S, t = jb->t, d = jb->d;
  for (int64_t r = 0; r < t; r++) weights_c(jb, r);
  memset(jb->acc, 0, (size_t)(t * GROUPS * d) * sizeof(float));
  memset(jb->l, 0, (size_t)(t * GROUPS) * sizeof(float));
  for (int64_t c0 = 0; c0 < d; c0 += 64)
    for (int64_t j0 = 0; j0 < S; j0 += SUM_KEYS) {
      const int64_t j1 = j0 + SUM_KEYS < S ? j0 + SUM_KEYS : S;
      for (int64_t r = 0; r < t; r++) {
        const unsigned char *b = jb->bits + r * S;
        for (int64_t j = j0; j < j1;) {
          const int64_t e = run_end(b, j, j1);
          run_sums_c(jb, jb->sct + r * S, j, e, jb->acc + (r * GROUPS + b[j]) * d, jb->l + r * GROUPS + b[j], c0,
                     c0 + 64 < d ? c0 + 64 : d);
          j = e;
        }
      }
    }
}

static void profile_scalar(const prof_job *jb) { profile_c(jb); }

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>

#include "base/simd_mask.h"

__attribute__((target("avx2,fma"))) static void profile_avx2(const prof_job *jb) { profile_c(jb); }

/* ------------------------------------------------------ AVX-512 passes */
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* Scores, 16 rows x 8 keys per register block; each lane adds q_c k_c for
 * c = 0, 1, ... in order, one multiply and one add, as scores_c. */
TARGET_AVX512 static void scores_avx512(const prof_job *jb) {
  const int64_t S = jb->S, t = jb->t, d = jb->d;
  for (int64_t r = 0; r < t; r += 16) {
    const __mmask16 k = simd_tail16(t - r);
    int64_t j = 0;
    for (; j + 8 <= S; j += 8) {
      const float *kj = jb->k + j * d;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
      for (int64_t c = 0; c < d; c++) {
        const __m512 q = _mm512_maskz_loadu_ps(k, jb->qt + c * t + r);
        a0 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[c]), a0);
        a1 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[d + c]), a1);
        a2 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[2 * d + c]), a2);
        a3 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[3 * d + c]), a3);
        a4 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[4 * d + c]), a4);
        a5 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[5 * d + c]), a5);
        a6 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[6 * d + c]), a6);
        a7 = _mm512_fmadd_ps(q, _mm512_set1_ps(kj[7 * d + c]), a7);
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
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, jb->qt + c * t + r), _mm512_set1_ps(kj[c]), a0);
      _mm512_mask_storeu_ps(jb->sc + j * t + r, k, a0);
    }
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

/* weights_c on 16 keys at a time: max_ps(x, m) is the scalar x > m ? x : m */
TARGET_AVX512 static void weights_avx512(const prof_job *jb, int64_t r) {
  const int64_t S = jb->S;
  float *s = jb->sct + r * S;
  __m512 mv = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < S; j += 16) mv = _mm512_max_ps(_mm512_maskz_loadu_ps(simd_tail16(S - j), s + j), mv);
  float lanes[16], m = -INFINITY;
  _mm512_storeu_ps(lanes, mv);
  for (int i = 0; i < 16; i++) m = lanes[i] > m ? lanes[i] : m;
  const __m512 mm = _mm512_set1_ps(m);
  for (int64_t j = 0; j < S; j += 16) {
    const __mmask16 k = simd_tail16(S - j);
    _mm512_mask_storeu_ps(s + j, k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mm)));
  }
}

/* run_sums_c for the 64 columns [c0, c0 + 64) (lane masks k0..k3), the
 * accumulators named so they stay in registers */
TARGET_AVX512 static inline __attribute__((always_inline)) void run_sums_avx512(const prof_job *jb, const float *w,
                                                                               int64_t a, int64_t b, float *acc,
                                                                               float *l, int64_t c0, __mmask16 k0,
                                                                               __mmask16 k1, __mmask16 k2,
                                                                               __mmask16 k3) {
  const int64_t d = jb->d;
  __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
  float le = 0.0f, lo = 0.0f;
  /* the scalar order: even offsets into e, odd into o */
#define RUN_KEY(j, x0, x1, x2, x3, lx)                                                 \
  do {                                                                                 \
    const float wj = w[j];                                                             \
    if (wj != 0.0f) {                                                                  \
      const float *vj = jb->v + (j) * d + c0;                                          \
      const __m512 wv = _mm512_set1_ps(wj);                                            \
      lx += wj;                                                                        \
      x0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(k0, vj), x0);               \
      x1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(k1, vj + 16), x1);          \
      x2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(k2, vj + 32), x2);          \
      x3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(k3, vj + 48), x3);          \
    }                                                                                  \
  } while (0)
  int64_t j = a;
  for (; j + 1 < b; j += 2) {
    RUN_KEY(j, e0, e1, e2, e3, le);
    RUN_KEY(j + 1, o0, o1, o2, o3, lo);
  }
  if (j < b) RUN_KEY(j, e0, e1, e2, e3, le);
#undef RUN_KEY
  float *o = acc + c0;
  _mm512_mask_storeu_ps(o, k0, _mm512_add_ps(_mm512_maskz_loadu_ps(k0, o), _mm512_add_ps(e0, o0)));
  _mm512_mask_storeu_ps(o + 16, k1, _mm512_add_ps(_mm512_maskz_loadu_ps(k1, o + 16), _mm512_add_ps(e1, o1)));
  _mm512_mask_storeu_ps(o + 32, k2, _mm512_add_ps(_mm512_maskz_loadu_ps(k2, o + 32), _mm512_add_ps(e2, o2)));
  _mm512_mask_storeu_ps(o + 48, k3, _mm512_add_ps(_mm512_maskz_loadu_ps(k3, o + 48), _mm512_add_ps(e3, o3)));
  if (c0 == 0) *l += le + lo;
}

/* run_end with 64 bytes per compare (the same runs) */
TARGET_AVX512 static inline int64_t run_end_avx512(const unsigned char *b, int64_t j, int64_t end) {
  const __m512i g = _mm512_set1_epi8((char)b[j]);
  for (int64_t e = j + 1; e < end; e += 64) {
    const __mmask64 in = end - e >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (end - e)) - 1);
    const __mmask64 other = _mm512_mask_cmpneq_epi8_mask(in, _mm512_maskz_loadu_epi8(in, b + e), g);
    if (other) return e + __builtin_ctzll(other);
  }
  return end;
}

TARGET_AVX512 static void profile_avx512(const prof_job *jb) {
  scores_avx512(jb);
  transpose_scores(jb);
  const int64_t S = jb->S, t = jb->t, d = jb->d;
  for (int64_t r = 0; r < t; r++) weights_avx512(jb, r);
  memset(jb->acc, 0, (size_t)(t * GROUPS * d) * sizeof(float));
  memset(jb->l, 0, (size_t)(t * GROUPS) * sizeof(float));
  for (int64_t c0 = 0; c0 < d; c0 += 64) {
    __mmask16 kc[4];
    for (int i = 0; i < 4; i++) kc[i] = c0 + 16 * i < d ? simd_tail16(d - c0 - 16 * i) : 0;
    for (int64_t j0 = 0; j0 < S; j0 += SUM_KEYS) {
      const int64_t j1 = j0 + SUM_KEYS < S ? j0 + SUM_KEYS : S;
      for (int64_t r = 0; r < t; r++) {
        const unsigned char *b = jb->bits + r * S;
        for (int64_t j = j0; j < j1;) {
          const int64_t e = run_end_avx512(b, j, j1);
          run_sums_avx512(jb, jb->sct + r * S, j, e, jb->acc + (r * GROUPS + b[j]) * d, jb->l + r * GROUPS + b[j], c0,
                          kc[0], kc[1], kc[2], kc[3]);
          j = e;
        }
      }
    }
  }
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
  size_t rows, bits, sc, sct, qt, acc, l, total; /* offsets in floats; total */
} prof_plan;

static bool section(size_t *at, size_t floats, size_t *offset) {
  size_t rounded;
  if (!sparq_size_add(floats, 15, &rounded)) return false;
  rounded &= ~(size_t)15;
  *offset = *at;
  return sparq_size_add(*at, rounded, at);
}

static bool plan_make(int64_t S, int64_t t, int64_t d, prof_plan *p) {
  size_t at = 0, st, tdg, bytes_floats;
  if (S < 1 || t < 1 || d < 1) return false;
  if (!sparq_size_mul((size_t)S, (size_t)t, &st) || !sparq_size_mul((size_t)t, (size_t)d, &tdg) ||
      !sparq_size_mul(tdg, GROUPS, &tdg) || !sparq_size_add(st, 3, &bytes_floats))
    return false;
  return section(&at, 2 * (size_t)t, &p->rows) /* int64 row indices */
         && section(&at, bytes_floats / 4, &p->bits) && section(&at, st, &p->sc) && section(&at, st, &p->sct) &&
         section(&at, (size_t)t * (size_t)d, &p->qt) && section(&at, tdg, &p->acc) &&
         section(&at, GROUPS * (size_t)t, &p->l) && (p->total = at, true);
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

/* Sets `bit` in `row` (row r's S bytes) for the keys of rows [a, b) of the
 * current layout of `head`, written at their frame-major rows. A
 * token-major range [ua, ub) holds, in each frame f, the positions p with
 * ua <= p F + f < ub: one run of frame-major rows per frame, found without
 * a division per key. */
static void mark_range(const svg_geom *g, sparq_svg_head head, int64_t a, int64_t b, unsigned char *row,
                       unsigned char bit) {
  const int64_t va = a > g->voff ? a : g->voff, vb = b < g->voff + g->Sv ? b : g->voff + g->Sv;
  if (head != SPARQ_SVG_TEMPORAL || va >= vb) {
    for (int64_t x = a; x < b; x++) row[x] |= bit;
    return;
  }
  for (int64_t x = a; x < va; x++) row[x] |= bit; /* text before the video rows */
  for (int64_t x = vb; x < b; x++) row[x] |= bit; /* and after */
  const int64_t ua = va - g->voff, ub = vb - g->voff;
  for (int64_t f = 0; f < g->F; f++) {
    int64_t p0 = ceil_div(ua - f, g->F), p1 = ceil_div(ub - f, g->F);
    p0 = p0 < 0 ? 0 : p0, p1 = p1 > g->P ? g->P : p1;
    for (int64_t p = p0; p < p1; p++) row[g->voff + f * g->P + p] |= bit;
  }
}

/* Marks every key of `keys` (current layout of `head`) in `row`. */
static void mark(const svg_geom *g, sparq_svg_head head, const svg_keys *keys, unsigned char *row,
                 unsigned char bit) {
  for (int s = 0; s < keys->nseg; s++) mark_range(g, head, keys->seg[s].a, keys->seg[s].b, row, bit);
  for (int s = 0; s < keys->nf0; s++)
    for (int64_t p = keys->f0[s].a; p < keys->f0[s].b; p++) row[g->voff + p] |= bit;
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
    mark(g, SPARQ_SVG_SPATIAL, &keys, bits + r * S, BIT_SPATIAL);
    svg_keys_of(g, SPARQ_SVG_TEMPORAL, svg_to_current(g, SPARQ_SVG_TEMPORAL, rows[r]), &keys);
    mark(g, SPARQ_SVG_TEMPORAL, &keys, bits + r * S, BIT_TEMPORAL);
  }
  float *qt = scratch + plan.qt;
  for (int64_t c = 0; c < d; c++)
    for (int64_t r = 0; r < t; r++) qt[c * t + r] = q[rows[r] * d + c] * scale;

  prof_job jb = {.S = S, .t = t, .d = d, .k = k, .v = v, .qt = qt, .bits = bits, .sc = scratch + plan.sc,
                 .sct = scratch + plan.sct, .l = scratch + plan.l, .acc = scratch + plan.acc};
  profile_run(&jb);

  /* The three outputs from the groups' sums (in double; an empty mask
   * gives 0), errors against the full one. Group 0: neither mask, 1:
   * spatial only, 2: temporal only, 3: both. */
  double err[2] = {0.0, 0.0};
  for (int64_t r = 0; r < t; r++) {
    const float *u = jb.acc + r * GROUPS * d, *lr = jb.l + r * GROUPS;
    const double l0 = lr[0], l1 = lr[1], l2 = lr[2], l3 = lr[3];
    const double lf = l0 + l1 + l2 + l3, lm[2] = {l1 + l3, l2 + l3};
    for (int m = 0; m < 2; m++) {
      const float *own_g = u + (1 + m) * d, *both = u + 3 * d;
      double e = 0.0;
      for (int64_t c = 0; c < d; c++) {
        const double full =
            ((double)u[c] + (double)u[d + c] + (double)u[2 * d + c] + (double)both[c]) / (lf > 0.0 ? lf : 1.0);
        const double mine = lm[m] > 0.0 ? ((double)own_g[c] + (double)both[c]) / lm[m] : 0.0;
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
