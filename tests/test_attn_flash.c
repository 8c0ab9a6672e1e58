/* flash_f32 (and the three-pass baseline) against the ref_f64 oracle on the
 * spec's §8 shapes and distributions, plus the AVX-512 kernel against its
 * portable twin, awkward sizes and 1 vs 2 threads. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

#include "attn_test_fp32.h"
#include "kernels/attn_flash.h"
#include "sparq/num.h"
#ifdef SPARQ_HAVE_X86_SIMD
#include "kernels/attn_flash_simd.h"

FLASH_AVX512 static void exp2_avx512_n(const float *x, float *y, int n) {
  for (int i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, flash_exp2_ps(_mm512_loadu_ps(x + i)));
}
#endif

/* FP32 flash attention against the double oracle: both round the output once
 * to FP32, flash adds FP32 accumulation over d and over the keys. */
#define FLASH_COS_MIN 0.99999
#define FLASH_REL_L1_MAX 1e-4
#define FLASH_MAX_ERR 1e-4 /* relative to max |O| */
#define LSE_ERR 1e-4        /* |lse - lse_ref| / (1 + |lse_ref|) */

typedef struct cmp_result {
  sparq_attn_error e;
  double max_rel, lse_err;
} cmp_result;

static double lse_error(const float *a, const float *b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    if (isinf(b[i]) && a[i] == b[i]) continue;
    double e = fabs((double)a[i] - (double)b[i]) / (1 + fabs((double)b[i]));
    if (!(e <= worst)) worst = e; /* NaN wins */
  }
  return worst;
}

/* Runs `variant` and ref_f64 on the same inputs and compares O and LSE. */
static cmp_result against_ref(const sparq_attn_shape *s, int case_id, bool causal, int64_t offset,
                              sparq_attn_layout layout, sparq_attn_variant variant, bool threepass) {
  attn_bufs ref = attn_bufs_make(s, case_id, layout, 1234 + (uint64_t)case_id);
  attn_bufs t = attn_bufs_make(s, -1, layout, 0);
  const size_t nq = attn_q_count(s), nl = attn_l_count(s);
  memcpy(t.q, ref.q, nq * sizeof(float));
  memcpy(t.k, ref.k, attn_k_count(s) * sizeof(float));
  memcpy(t.v, ref.v, attn_k_count(s) * sizeof(float));
  assert_int_equal(attn_run(&ref, SPARQ_ATTN_REF_F64, causal, offset, layout), SPARQ_OK);
  if (threepass) {
    sparq_attn_options o = sparq_attn_options_default();
    o.causal = causal, o.layout = layout, o.lse = t.lse;
    if (causal && s->q_len != s->kv_len) o.has_causal_offset = true, o.causal_offset = offset;
    assert_int_equal(sparq_attention_threepass(t.q, t.k, t.v, t.o, s, &o), SPARQ_OK);
  } else {
    assert_int_equal(attn_run(&t, variant, causal, offset, layout), SPARQ_OK);
  }
  cmp_result r;
  sparq_attn_compare(ref.o, t.o, nq, &r.e);
  r.max_rel = attn_normwise_err(t.o, ref.o, nq);
  r.lse_err = lse_error(t.lse, ref.lse, nl);
  attn_bufs_free(&ref);
  attn_bufs_free(&t);
  return r;
}

static void check(const cmp_result *r, const char *what) {
  if (getenv("ATTN_TEST_VERBOSE"))
    printf("%s: cos %.9f rel_l1 %.3g max_rel %.3g lse %.3g\n", what, r->e.cos_sim, r->e.rel_l1, r->max_rel, r->lse_err);
  if (!(r->e.cos_sim >= FLASH_COS_MIN && r->e.rel_l1 <= FLASH_REL_L1_MAX && r->max_rel <= FLASH_MAX_ERR &&
        r->lse_err <= LSE_ERR && r->e.nonfinite == 0))
    fail_msg("%s: cos %.9f rel_l1 %.3g max_rel %.3g lse %.3g nonfinite %lld", what, r->e.cos_sim, r->e.rel_l1,
             r->max_rel, r->lse_err, (long long)r->e.nonfinite);
}

/* Spec §8: every shape and case D0..D5, causal where legal (Nq != Nk runs
 * causal with the bottom-right diagonal, an explicit offset). */
static void flash_matches_ref_on_spec_shapes(void **state) {
  (void)state;
  sparq_attn_shape shapes[] = {attn_shape(1, 2, 2, 1024, 1024, 128), attn_shape(1, 2, 2, 1024, 1024, 64),
                               attn_shape(2, 4, 4, 333, 333, 96), attn_shape(1, 8, 2, 512, 512, 128),
                               attn_shape(1, 2, 2, 256, 1024, 128)};
  const int nshapes = sizeof shapes / sizeof shapes[0];
  for (int si = 0; si < nshapes; si++) {
    sparq_attn_shape s = shapes[si];
    if (ATTN_TEST_SLOW) { /* same structure, a quarter of the length */
      s.q_len = (s.q_len + 3) / 4, s.kv_len = (s.kv_len + 3) / 4;
    }
    for (int c = 0; c <= 5; c++)
      for (int causal = 0; causal <= 1; causal++) {
        if (ATTN_TEST_SLOW && c != 1 && c != 5) continue;
        cmp_result r = against_ref(&s, c, causal, s.kv_len - s.q_len, SPARQ_ATTN_HND, SPARQ_ATTN_FLASH_F32, false);
        char what[160];
        snprintf(what, sizeof what, "flash_f32 (%lld,%lld/%lld,%lld/%lld,%lld) D%d causal %d", (long long)s.batch,
                 (long long)s.q_heads, (long long)s.kv_heads, (long long)s.q_len, (long long)s.kv_len,
                 (long long)s.head_dim, c, causal);
        check(&r, what);
      }
  }
}

static void threepass_matches_ref(void **state) {
  (void)state;
  sparq_attn_shape shapes[] = {attn_shape(1, 2, 1, 200, 200, 64), attn_shape(2, 2, 2, 65, 130, 80),
                               attn_shape(1, 1, 1, 1, 77, 32)};
  for (int si = 0; si < 3; si++)
    for (int causal = 0; causal <= 1; causal++) {
      const sparq_attn_shape *s = &shapes[si];
      cmp_result r = against_ref(s, 2, causal, s->kv_len - s->q_len, SPARQ_ATTN_HND, SPARQ_ATTN_FLASH_F32, true);
      char what[96];
      snprintf(what, sizeof what, "three-pass shape %d causal %d", si, causal);
      check(&r, what);
    }
}

/* Lengths around the 64-key blocks, the 96-query items and the 6-row tiles;
 * head dims that need padding; GQA; Nq != Nk both ways with offsets. */
static void flash_matches_ref_on_awkward_sizes(void **state) {
  (void)state;
  const int64_t lens[] = {1, 63, 65, 127, 129, 1000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
    for (int causal = 0; causal <= 1; causal++) {
      if (ATTN_TEST_SLOW && lens[i] == 1000 && causal) continue;
      sparq_attn_shape s = attn_shape(1, 2, 1, lens[i], lens[i], 64);
      cmp_result r = against_ref(&s, 1, causal, 0, SPARQ_ATTN_HND, SPARQ_ATTN_FLASH_F32, false);
      char what[64];
      snprintf(what, sizeof what, "N=%lld causal %d", (long long)lens[i], causal);
      check(&r, what);
    }
  const int64_t dims[] = {1, 7, 32, 80, 96, 160, 256};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    sparq_attn_shape s = attn_shape(1, 2, 2, 100, 100, dims[i]);
    cmp_result r = against_ref(&s, 3, i % 2 == 0, 0, SPARQ_ATTN_HND, SPARQ_ATTN_FLASH_F32, false);
    char what[64];
    snprintf(what, sizeof what, "d=%lld", (long long)dims[i]);
    check(&r, what);
  }
  /* Nq != Nk: top-left, bottom-right, an offset that masks the first rows
   * entirely, and one past the end (every key visible) */
  const int64_t offsets[] = {0, 190, -20, 1000};
  for (size_t i = 0; i < 4; i++) {
    sparq_attn_shape s = attn_shape(1, 4, 2, 70, 260, 32);
    cmp_result r = against_ref(&s, 4, true, offsets[i], SPARQ_ATTN_NHD, SPARQ_ATTN_FLASH_F32, false);
    char what[64];
    snprintf(what, sizeof what, "Nq<Nk offset %lld", (long long)offsets[i]);
    check(&r, what);
  }
  sparq_attn_shape s = attn_shape(2, 3, 1, 300, 50, 64);
  cmp_result r = against_ref(&s, 2, true, -100, SPARQ_ATTN_HND, SPARQ_ATTN_FLASH_F32, false);
  check(&r, "Nq>Nk offset -100");
  r = against_ref(&s, 2, false, 0, SPARQ_ATTN_NHD, SPARQ_ATTN_FLASH_F32, false);
  check(&r, "Nq>Nk non-causal NHD");
}

/* The AVX-512 kernel against its portable twin (and the AVX2 build of the
 * twin, which must give the same bits) on random and adversarial inputs. */
static void simd_kernels_match_portable_twin(void **state) {
  (void)state;
  if (sparq_isa_active() == SPARQ_ISA_SCALAR) skip();
  const sparq_isa top = sparq_isa_active();
  sparq_attn_shape shapes[] = {attn_shape(1, 2, 1, 131, 200, 96), attn_shape(1, 1, 1, 7, 7, 256),
                               attn_shape(2, 2, 2, 64, 64, 32)};
  for (int si = 0; si < 3; si++)
    for (int c = 0; c <= 5; c += 1)
      for (int causal = 0; causal <= 1; causal++) {
        const sparq_attn_shape *s = &shapes[si];
        attn_bufs a = attn_bufs_make(s, c, SPARQ_ATTN_HND, 99 + (uint64_t)c);
        attn_bufs p = attn_bufs_make(s, -1, SPARQ_ATTN_HND, 0), x = attn_bufs_make(s, -1, SPARQ_ATTN_HND, 0);
        const size_t nq = attn_q_count(s), nk = attn_k_count(s), nl = attn_l_count(s);
        if (c == 0) /* adversarial: logits x1000 on half the heads' inputs */
          for (size_t i = 0; i < nq / 2; i++) a.q[i] *= 1000.0f;
        memcpy(p.q, a.q, nq * 4), memcpy(p.k, a.k, nk * 4), memcpy(p.v, a.v, nk * 4);
        memcpy(x.q, a.q, nq * 4), memcpy(x.k, a.k, nk * 4), memcpy(x.v, a.v, nk * 4);
        assert_int_equal(attn_run(&a, SPARQ_ATTN_FLASH_F32, causal, 0, SPARQ_ATTN_HND), SPARQ_OK);
        sparq_set_isa_cap(SPARQ_ISA_SCALAR);
        assert_int_equal(attn_run(&p, SPARQ_ATTN_FLASH_F32, causal, 0, SPARQ_ATTN_HND), SPARQ_OK);
        sparq_set_isa_cap(SPARQ_ISA_AVX2);
        if (sparq_isa_active() == SPARQ_ISA_AVX2) {
          assert_int_equal(attn_run(&x, SPARQ_ATTN_FLASH_F32, causal, 0, SPARQ_ATTN_HND), SPARQ_OK);
          assert_true(attn_bits_equal(x.o, p.o, nq));
          assert_true(attn_bits_equal(x.lse, p.lse, nl));
        }
        sparq_set_isa_cap(top);
        double e = attn_normwise_err(a.o, p.o, nq);
        if (getenv("ATTN_TEST_VERBOSE")) printf("twin shape %d D%d causal %d: %.3g\n", si, c, causal, e);
        if (e > 1e-4) fail_msg("shape %d D%d causal %d: avx512 vs portable %.3g", si, c, causal, e);
        const double le = lse_error(a.lse, p.lse, nl);
        if (le > 1e-5) fail_msg("shape %d D%d causal %d: lse differs by %.3g", si, c, causal, le);
        attn_bufs_free(&a), attn_bufs_free(&p), attn_bufs_free(&x);
      }
}

static void thread_count_does_not_change_bits(void **state) {
  (void)state;
  const int before = sparq_threads();
  sparq_attn_shape s = attn_shape(2, 4, 2, 300, 300, 80);
  for (int causal = 0; causal <= 1; causal++)
    for (int tp = 0; tp <= 1; tp++) {
      attn_bufs a = attn_bufs_make(&s, 2, SPARQ_ATTN_HND, 5), b = attn_bufs_make(&s, 2, SPARQ_ATTN_HND, 5);
      sparq_attn_options o = sparq_attn_options_default();
      o.causal = causal;
      sparq_set_threads(1);
      o.lse = a.lse;
      assert_int_equal(tp ? sparq_attention_threepass(a.q, a.k, a.v, a.o, &s, &o) : sparq_attention(a.q, a.k, a.v, a.o, &s, &o),
                       SPARQ_OK);
      sparq_set_threads(2);
      o.lse = b.lse;
      assert_int_equal(tp ? sparq_attention_threepass(b.q, b.k, b.v, b.o, &s, &o) : sparq_attention(b.q, b.k, b.v, b.o, &s, &o),
                       SPARQ_OK);
      assert_true(attn_bits_equal(a.o, b.o, attn_q_count(&s)));
      assert_true(attn_bits_equal(a.lse, b.lse, attn_l_count(&s)));
      attn_bufs_free(&a), attn_bufs_free(&b);
    }
  sparq_set_threads(before);
}

/* HND and NHD see the same normalized problem: the same bits after the
 * transposition. F16 / BF16 inputs give exactly the FP32 result of their
 * widened values. */
static void layouts_and_dtypes_agree(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(2, 4, 2, 77, 77, 48);
  const size_t nq = attn_q_count(&s), nk = attn_k_count(&s);
  attn_bufs h = attn_bufs_make(&s, 3, SPARQ_ATTN_HND, 8), n = attn_bufs_make(&s, 3, SPARQ_ATTN_NHD, 8);
  assert_int_equal(attn_run(&h, SPARQ_ATTN_FLASH_F32, true, 0, SPARQ_ATTN_HND), SPARQ_OK);
  assert_int_equal(attn_run(&n, SPARQ_ATTN_FLASH_F32, true, 0, SPARQ_ATTN_NHD), SPARQ_OK);
  for (int64_t b = 0; b < s.batch; b++)
    for (int64_t hh = 0; hh < s.q_heads; hh++)
      for (int64_t i = 0; i < s.q_len; i++)
        for (int64_t c = 0; c < s.head_dim; c++) {
          float x = h.o[((b * s.q_heads + hh) * s.q_len + i) * s.head_dim + c];
          float y = n.o[((b * s.q_len + i) * s.q_heads + hh) * s.head_dim + c];
          if (memcmp(&x, &y, 4)) fail_msg("HND/NHD differ at b%lld h%lld i%lld c%lld", (long long)b, (long long)hh,
                                         (long long)i, (long long)c);
        }
  assert_true(attn_bits_equal(h.lse, n.lse, attn_l_count(&s)));

  for (int dt = 0; dt < 2; dt++) {
    const sparq_dtype dtype = dt ? SPARQ_BF16 : SPARQ_F16;
    uint16_t *q16 = sparq_alloc(nq * 2, "q16"), *k16 = sparq_alloc(nk * 2, "k16"), *v16 = sparq_alloc(nk * 2, "v16");
    attn_bufs w = attn_bufs_make(&s, -1, SPARQ_ATTN_HND, 0), r = attn_bufs_make(&s, -1, SPARQ_ATTN_HND, 0);
    if (dt) {
      sparq_f32_to_bf16_n(h.q, q16, nq), sparq_f32_to_bf16_n(h.k, k16, nk), sparq_f32_to_bf16_n(h.v, v16, nk);
      sparq_bf16_to_f32_n(q16, w.q, nq), sparq_bf16_to_f32_n(k16, w.k, nk), sparq_bf16_to_f32_n(v16, w.v, nk);
    } else {
      sparq_f32_to_f16_n(h.q, q16, nq), sparq_f32_to_f16_n(h.k, k16, nk), sparq_f32_to_f16_n(h.v, v16, nk);
      sparq_f16_to_f32_n(q16, w.q, nq), sparq_f16_to_f32_n(k16, w.k, nk), sparq_f16_to_f32_n(v16, w.v, nk);
    }
    for (int v = 0; v < 2; v++) {
      const sparq_attn_variant var = v ? SPARQ_ATTN_FLASH_F32 : SPARQ_ATTN_REF_F64;
      sparq_attn_options o = sparq_attn_options_default();
      o.variant = var, o.dtype = dtype, o.causal = true;
      assert_int_equal(sparq_attention(q16, k16, v16, r.o, &s, &o), SPARQ_OK);
      assert_int_equal(attn_run(&w, var, true, 0, SPARQ_ATTN_HND), SPARQ_OK);
      assert_true(attn_bits_equal(r.o, w.o, nq));
      o.layout = SPARQ_ATTN_NHD; /* the same bytes read as NHD are a different, valid problem */
      assert_int_equal(sparq_attention(q16, k16, v16, r.o, &s, &o), SPARQ_OK);
    }
    sparq_free(q16), sparq_free(k16), sparq_free(v16);
    attn_bufs_free(&w), attn_bufs_free(&r);
  }
  attn_bufs_free(&h), attn_bufs_free(&n);
}

/* The softmax's exp2, scalar and vector, against exp2 in double: relative
 * error < 2e-7 where the result is normal, 0 below the normal range (the
 * mask value included), NaN kept. */
static void exp2_polynomial_is_accurate(void **state) {
  (void)state;
  enum { N = 4096 };
  static float x[N], ys[N], yv[N];
  for (int i = 0; i < N - 16; i++) x[i] = -130.0f * (float)i / (float)(N - 17) + (i % 7) * 1e-3f;
  const float special[16] = {0.0f, -0.5f, 0.5f * -1.0f, -1e30f, -INFINITY, NAN, -126.0f, -125.5f, -149.0f, -200.0f,
                             -1e-8f, -0.25f, -1.5f, -2.5f, -100.0f, -3e38f};
  memcpy(x + N - 16, special, sizeof special);
  for (int i = 0; i < N; i++) ys[i] = flash_exp2(x[i]);
  bool vector = false;
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() == SPARQ_ISA_AVX512) {
    exp2_avx512_n(x, yv, N);
    vector = true;
  }
#endif
  for (int i = 0; i < N; i++) {
    const float *ys_or_v[2] = {ys, yv};
    for (int w = 0; w < (vector ? 2 : 1); w++) {
      const float y = ys_or_v[w][i];
      if (isnan(x[i])) {
        assert_true(isnan(y));
        continue;
      }
      const double want = exp2((double)x[i]);
      if (want < 0x1p-126) {
        /* below the normal range: exactly 0 or the subnormal flush-to-zero would give */
        if (!(y == 0.0f || fabs(y - want) <= 0x1p-126)) fail_msg("%s exp2(%g) = %g", w ? "vector" : "scalar", (double)x[i], (double)y);
        continue;
      }
      if (fabs(y - want) > 2e-7 * want) fail_msg("%s exp2(%.9g) = %.9g, want %.9g", w ? "vector" : "scalar", (double)x[i], (double)y, want);
    }
  }
  assert_true(flash_exp2(0.0f) == 1.0f && flash_exp2(-1e30f) == 0.0f && flash_exp2(-INFINITY) == 0.0f);
}

/* HND element (b, h, n, c) of a tensor stored NHD. */
static float nhd_at(const float *x, const sparq_attn_shape *s, int64_t heads, int64_t len, int64_t b, int64_t h,
                    int64_t n, int64_t c) {
  return x[((b * len + n) * heads + h) * s->head_dim + c];
}

/* flash_f32 reads FP32 tensors whose head dim needs no padding in place, at
 * the layout's strides: NHD must give exactly the HND bits, with GQA, causal
 * offsets that mask whole rows, and any thread count. */
static void strided_layouts_agree(void **state) {
  (void)state;
  const int before = sparq_threads();
  const struct {
    sparq_attn_shape s;
    bool causal;
    int64_t offset;
  } cases[] = {{{2, 6, 3, 256, 256, 64}, true, 0}, {{1, 4, 1, 200, 330, 32}, true, -30},
               {{2, 2, 2, 97, 97, 96}, false, 0}, {{1, 3, 3, 130, 60, 128}, true, 100}};
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const sparq_attn_shape *s = &cases[ci].s;
    const size_t nq = attn_q_count(s), nl = attn_l_count(s);
    attn_bufs h = attn_bufs_make(s, 2, SPARQ_ATTN_HND, 31 + ci), n = attn_bufs_make(s, -1, SPARQ_ATTN_NHD, 0);
    /* the same problem in NHD */
    for (int t = 0; t < 3; t++) {
      const float *src = t == 0 ? h.q : t == 1 ? h.k : h.v;
      float *dst = t == 0 ? n.q : t == 1 ? n.k : n.v;
      const int64_t heads = t == 0 ? s->q_heads : s->kv_heads, len = t == 0 ? s->q_len : s->kv_len;
      for (int64_t b = 0; b < s->batch; b++)
        for (int64_t hh = 0; hh < heads; hh++)
          for (int64_t i = 0; i < len; i++)
            for (int64_t c = 0; c < s->head_dim; c++)
              dst[((b * len + i) * heads + hh) * s->head_dim + c] = src[((b * heads + hh) * len + i) * s->head_dim + c];
    }
    sparq_set_threads(1);
    assert_int_equal(attn_run(&h, SPARQ_ATTN_FLASH_F32, cases[ci].causal, cases[ci].offset, SPARQ_ATTN_HND), SPARQ_OK);
    for (int threads = 1; threads <= 3; threads++) {
      sparq_set_threads(threads);
      memset(n.o, 0xff, nq * sizeof(float)); /* NaN: every element must be written */
      assert_int_equal(attn_run(&n, SPARQ_ATTN_FLASH_F32, cases[ci].causal, cases[ci].offset, SPARQ_ATTN_NHD),
                       SPARQ_OK);
      for (int64_t b = 0; b < s->batch; b++)
        for (int64_t hh = 0; hh < s->q_heads; hh++)
          for (int64_t i = 0; i < s->q_len; i++)
            for (int64_t c = 0; c < s->head_dim; c++) {
              const float x = h.o[((b * s->q_heads + hh) * s->q_len + i) * s->head_dim + c];
              const float y = nhd_at(n.o, s, s->q_heads, s->q_len, b, hh, i, c);
              if (memcmp(&x, &y, 4))
                fail_msg("case %zu threads %d: HND/NHD differ at b%lld h%lld i%lld c%lld", ci, threads, (long long)b,
                         (long long)hh, (long long)i, (long long)c);
            }
      assert_true(attn_bits_equal(h.lse, n.lse, nl));
    }
    cmp_result r = against_ref(s, 2, cases[ci].causal, cases[ci].offset, SPARQ_ATTN_NHD, SPARQ_ATTN_FLASH_F32, false);
    char what[64];
    snprintf(what, sizeof what, "strided NHD case %zu", ci);
    check(&r, what);
    attn_bufs_free(&h), attn_bufs_free(&n);
  }
  sparq_set_threads(before);
}

/* Few heads: the forward cuts each head into runs of query blocks, a
 * different cut for each thread count; the bits stay the same. */
static void few_heads_any_thread_count(void **state) {
  (void)state;
  const int before = sparq_threads();
  sparq_attn_shape s = attn_shape(1, 2, 1, ATTN_TEST_SLOW ? 500 : 1100, ATTN_TEST_SLOW ? 500 : 1100, 64);
  for (int causal = 0; causal <= 1; causal++) {
    attn_bufs a = attn_bufs_make(&s, 1, SPARQ_ATTN_HND, 3), b = attn_bufs_make(&s, -1, SPARQ_ATTN_HND, 0);
    memcpy(b.q, a.q, attn_q_count(&s) * 4), memcpy(b.k, a.k, attn_k_count(&s) * 4);
    memcpy(b.v, a.v, attn_k_count(&s) * 4);
    sparq_set_threads(1);
    assert_int_equal(attn_run(&a, SPARQ_ATTN_FLASH_F32, causal, 0, SPARQ_ATTN_HND), SPARQ_OK);
    for (int threads = 2; threads <= 5; threads += 3) {
      sparq_set_threads(threads);
      assert_int_equal(attn_run(&b, SPARQ_ATTN_FLASH_F32, causal, 0, SPARQ_ATTN_HND), SPARQ_OK);
      assert_true(attn_bits_equal(a.o, b.o, attn_q_count(&s)));
      assert_true(attn_bits_equal(a.lse, b.lse, attn_l_count(&s)));
    }
    attn_bufs_free(&a), attn_bufs_free(&b);
  }
  sparq_set_threads(before);
}

/* The transposing block pack: the AVX-512 version gives the scalar bits,
 * zero columns past n, for partial blocks, wide rows and any head dim. */
static void block_pack_versions_agree(void **state) {
  (void)state;
  const int64_t ns[] = {1, 5, 16, 17, 40, 63, 64}, dps[] = {32, 64, 96, 256};
  const int64_t ld = 3 * 256 + 16;
  float *x = sparq_alloc(64 * ld * sizeof(float), "pack in");
  float *a = sparq_alloc(256 * 64 * sizeof(float), "pack a"), *b = sparq_alloc(256 * 64 * sizeof(float), "pack b");
  for (int64_t i = 0; i < 64 * ld; i++) x[i] = (float)((i * 7919) % 1000) * 0.37f - 150.0f;
  for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
    for (size_t di = 0; di < sizeof dps / sizeof dps[0]; di++) {
      const int64_t n = ns[ni], dp = dps[di];
      memset(a, 0xff, 256 * 64 * sizeof(float));
      flash_pack_t(x + 3, ld, n, dp, 0.125f * (float)(1 + ni), a);
      for (int64_t c = 0; c < dp; c++)
        for (int64_t j = 0; j < 64; j++) {
          const float want = j < n ? x[3 + j * ld + c] * (0.125f * (float)(1 + ni)) : 0.0f;
          if (memcmp(&a[c * 64 + j], &want, 4))
            fail_msg("pack n %lld dp %lld: [%lld][%lld]", (long long)n, (long long)dp, (long long)c, (long long)j);
        }
#ifdef SPARQ_HAVE_X86_SIMD
      if (sparq_isa_active() == SPARQ_ISA_AVX512) {
        memset(b, 0xff, 256 * 64 * sizeof(float));
        flash_pack_t_avx512(x + 3, ld, n, dp, 0.125f * (float)(1 + ni), b);
        assert_true(attn_bits_equal(a, b, (size_t)(dp * 64)));
      }
#endif
    }
  sparq_free(x), sparq_free(a), sparq_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exp2_polynomial_is_accurate),
      cmocka_unit_test(flash_matches_ref_on_spec_shapes),
      cmocka_unit_test(threepass_matches_ref),
      cmocka_unit_test(flash_matches_ref_on_awkward_sizes),
      cmocka_unit_test(simd_kernels_match_portable_twin),
      cmocka_unit_test(thread_count_does_not_change_bits),
      cmocka_unit_test(layouts_and_dtypes_agree),
      cmocka_unit_test(strided_layouts_agree),
      cmocka_unit_test(few_heads_any_thread_count),
      cmocka_unit_test(block_pack_versions_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
