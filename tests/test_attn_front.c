/* sparq_attention's front end: names and defaults, argument checks with
 * messages that name the problem, inputs never modified, and the edge cases
 * every variant must survive (fully masked rows, huge logits, constant keys,
 * NaN rows, awkward lengths and head dims, 1 vs 2 threads). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

#include "attn_test_fp32.h"
#include "sparq/num.h"

static const sparq_attn_variant all_variants[] = {SPARQ_ATTN_REF_F64,  SPARQ_ATTN_FLASH_F32, SPARQ_ATTN_SAGE1,
                                                  SPARQ_ATTN_SAGE2_8B, SPARQ_ATTN_SAGE2_4B,  SPARQ_ATTN_SAGE_CPU};
enum { NVARIANTS = sizeof all_variants / sizeof all_variants[0] };

static bool is_fp32(sparq_attn_variant v) { return v == SPARQ_ATTN_REF_F64 || v == SPARQ_ATTN_FLASH_F32; }

static void names_round_trip_and_defaults(void **state) {
  (void)state;
  const char *variants[] = {"ref_f64", "flash_f32", "sage1", "sage2_8b", "sage2_4b", "sage_cpu"};
  for (int i = 0; i < SPARQ_ATTN_VARIANT_COUNT; i++) {
    sparq_attn_variant v;
    assert_string_equal(sparq_attn_variant_name((sparq_attn_variant)i), variants[i]);
    assert_true(sparq_attn_variant_from_name(variants[i], &v));
    assert_int_equal(v, i);
  }
  const char *grans[] = {"per_thread", "per_warp", "per_block", "per_token"};
  for (int i = 0; i < 4; i++) {
    sparq_attn_granularity g;
    assert_true(sparq_attn_granularity_from_name(grans[i], &g));
    assert_string_equal(sparq_attn_granularity_name(g), grans[i]);
  }
  const char *accs[] = {"f32", "f22", "f22+f32", "f16+f32"};
  for (int i = 0; i < 4; i++) {
    sparq_attn_pv_accum a;
    assert_true(sparq_attn_pv_accum_from_name(accs[i], &a));
    assert_string_equal(sparq_attn_pv_accum_name(a), accs[i]);
  }
  sparq_attn_variant v = SPARQ_ATTN_SAGE1;
  assert_false(sparq_attn_variant_from_name("flash", &v));
  assert_false(sparq_attn_variant_from_name(NULL, &v));
  assert_false(sparq_attn_variant_from_name("sage1", NULL));
  assert_int_equal(v, SPARQ_ATTN_SAGE1);
  assert_string_equal(sparq_attn_variant_name((sparq_attn_variant)99), "?");
  assert_string_equal(sparq_attn_granularity_name((sparq_attn_granularity)-3), "?");

  sparq_attn_options o = sparq_attn_options_default();
  assert_int_equal(o.variant, SPARQ_ATTN_FLASH_F32);
  assert_int_equal(o.layout, SPARQ_ATTN_HND);
  assert_int_equal(o.dtype, SPARQ_F32);
  assert_false(o.causal);
  assert_true(o.sm_scale == 0.0f && o.lse == NULL && o.dump_dir == NULL);
  assert_int_equal(o.smooth_k, SPARQ_ATTN_AUTO);
  assert_int_equal(o.granularity, SPARQ_ATTN_GRAN_DEFAULT);
}

/* Expects SPARQ_ERR_ARG and a message containing `needle`. */
static void expect_arg_error(const sparq_attn_shape *s, const sparq_attn_options *o, const void *q, const void *k,
                             const void *v, float *out, const char *needle) {
  sparq_status st = sparq_attention(q, k, v, out, s, o);
  if (st != SPARQ_ERR_ARG || !strstr(sparq_last_error(), needle) || !strstr(sparq_last_error(), "sparq_attention"))
    fail_msg("expected an argument error naming '%s', got %d '%s'", needle, st, sparq_last_error());
}

static void bad_arguments_are_named(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(1, 4, 2, 8, 8, 16);
  attn_bufs b = attn_bufs_make(&s, 0, SPARQ_ATTN_HND, 1);
  sparq_attn_options o = sparq_attn_options_default();
  expect_arg_error(NULL, &o, b.q, b.k, b.v, b.o, "shape is NULL");
  expect_arg_error(&s, NULL, b.q, b.k, b.v, b.o, "opts is NULL");
  expect_arg_error(&s, &o, NULL, b.k, b.v, b.o, "must not be NULL");
  expect_arg_error(&s, &o, b.q, b.k, b.v, NULL, "must not be NULL");
  sparq_attn_shape t = s;
  t.q_len = 0;
  expect_arg_error(&t, &o, b.q, b.k, b.v, b.o, "q_len 0");
  t = s, t.head_dim = 257;
  expect_arg_error(&t, &o, b.q, b.k, b.v, b.o, "head_dim 257");
  t = s, t.kv_heads = 3;
  expect_arg_error(&t, &o, b.q, b.k, b.v, b.o, "not a multiple of kv_heads 3");
  t = s, t.batch = (int64_t)1 << 40, t.q_len = (int64_t)1 << 40;
  expect_arg_error(&t, &o, b.q, b.k, b.v, b.o, "overflow");
  o.variant = (sparq_attn_variant)17;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "unknown variant 17");
  o = sparq_attn_options_default(), o.layout = (sparq_attn_layout)2;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "layout");
  o = sparq_attn_options_default(), o.dtype = SPARQ_F8_E4M3;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "F8_E4M3");
  o = sparq_attn_options_default(), o.sm_scale = -1;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "sm_scale");
  o.sm_scale = NAN;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "sm_scale");
  o = sparq_attn_options_default(), o.granularity = (sparq_attn_granularity)9;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "granularity");
  o = sparq_attn_options_default(), o.pv_accum = (sparq_attn_pv_accum)9;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "pv_accum");
  o = sparq_attn_options_default(), o.smooth_v = (sparq_attn_switch)4;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "smooth");
  /* quantization knobs on an FP32 variant are refused, not ignored */
  o = sparq_attn_options_default(), o.granularity = SPARQ_ATTN_GRAN_PER_TOKEN;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "granularity applies to the Sage variants only");
  o = sparq_attn_options_default(), o.variant = SPARQ_ATTN_REF_F64, o.dump_dir = "/tmp";
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "dump_dir");
  /* outputs may not alias inputs */
  o = sparq_attn_options_default();
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.q + 3, "o overlaps");
  o.lse = b.o + 1;
  expect_arg_error(&s, &o, b.q, b.k, b.v, b.o, "lse overlaps");
  /* causal with Nq != Nk needs an explicit diagonal; the message says how */
  t = s, t.kv_len = 5;
  o = sparq_attn_options_default(), o.causal = true;
  expect_arg_error(&t, &o, b.q, b.k, b.v, b.o, "needs an explicit diagonal");
  expect_arg_error(&t, &o, b.q, b.k, b.v, b.o, "-3 = bottom-right");
  o.has_causal_offset = true, o.causal_offset = -3;
  assert_int_equal(sparq_attention(b.q, b.k, b.v, b.o, &t, &o), SPARQ_OK);
  /* the three-pass baseline is FP32 only */
  o = sparq_attn_options_default(), o.variant = SPARQ_ATTN_SAGE1;
  assert_int_equal(sparq_attention_threepass(b.q, b.k, b.v, b.o, &s, &o), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_attention_threepass"));
  attn_bufs_free(&b);
}

/* Runs a variant; UNSUPPORTED (a Sage variant not landed in this build yet)
 * is reported and skipped, every other failure is a test failure. */
static bool run_variant(attn_bufs *b, sparq_attn_variant v, sparq_attn_options *o) {
  o->variant = v;
  sparq_status st = sparq_attention(b->q, b->k, b->v, b->o, &b->shape, o);
  if (st == SPARQ_ERR_UNSUPPORTED) {
    printf("  note: %s: %s\n", sparq_attn_variant_name(v), sparq_last_error());
    return false;
  }
  if (st != SPARQ_OK) fail_msg("%s: %s", sparq_attn_variant_name(v), sparq_last_error());
  return true;
}

static uint64_t checksum(const void *p, size_t bytes) {
  const unsigned char *c = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < bytes; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static void inputs_are_never_modified(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(1, 2, 1, 70, 70, 40);
  attn_bufs b = attn_bufs_make(&s, 3, SPARQ_ATTN_NHD, 2);
  const size_t nq = attn_q_count(&s), nk = attn_k_count(&s);
  uint16_t *h = sparq_alloc((nq + 2 * nk) * 2, "f16 inputs");
  sparq_f32_to_f16_n(b.q, h, nq), sparq_f32_to_f16_n(b.k, h + nq, nk), sparq_f32_to_f16_n(b.v, h + nq + nk, nk);
  const uint64_t sq = checksum(b.q, nq * 4), sk = checksum(b.k, nk * 4), sv = checksum(b.v, nk * 4);
  const uint64_t sh = checksum(h, (nq + 2 * nk) * 2);
  for (int i = 0; i < NVARIANTS; i++) {
    sparq_attn_options o = sparq_attn_options_default();
    o.layout = SPARQ_ATTN_NHD, o.causal = true, o.lse = b.lse;
    run_variant(&b, all_variants[i], &o);
    o.dtype = SPARQ_F16, o.variant = all_variants[i];
    sparq_status st = sparq_attention(h, h + nq, h + nq + nk, b.o, &s, &o);
    assert_true(st == SPARQ_OK || st == SPARQ_ERR_UNSUPPORTED);
  }
  assert_true(checksum(b.q, nq * 4) == sq && checksum(b.k, nk * 4) == sk && checksum(b.v, nk * 4) == sv);
  assert_true(checksum(h, (nq + 2 * nk) * 2) == sh);
  sparq_free(h);
  attn_bufs_free(&b);
}

/* Rows that see no key (a causal offset below zero) give O = 0, LSE = -inf;
 * logits x1000 give finite output; constant K gives mean(V). */
static void masked_rows_huge_logits_constant_keys(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(1, 2, 2, 100, 100, 64);
  const size_t nq = attn_q_count(&s), nk = attn_k_count(&s);
  for (int i = 0; i < NVARIANTS; i++) {
    const sparq_attn_variant v = all_variants[i];
    attn_bufs b = attn_bufs_make(&s, 1, SPARQ_ATTN_HND, 11);
    sparq_attn_options o = sparq_attn_options_default();
    o.causal = true, o.has_causal_offset = true, o.causal_offset = -10, o.lse = b.lse;
    if (run_variant(&b, v, &o)) {
      for (int64_t h = 0; h < s.q_heads; h++)
        for (int64_t r = 0; r < s.q_len; r++) {
          const float *row = b.o + (h * s.q_len + r) * s.head_dim;
          const float lse = b.lse[h * s.q_len + r];
          for (int64_t c = 0; c < s.head_dim; c++) {
            if (r < 10 && row[c] != 0.0f) fail_msg("%s: masked row %lld is not 0", sparq_attn_variant_name(v), (long long)r);
            if (!isfinite(row[c])) fail_msg("%s: row %lld not finite", sparq_attn_variant_name(v), (long long)r);
          }
          if (r < 10 ? !(isinf(lse) && lse < 0) : !isfinite(lse))
            fail_msg("%s: row %lld lse %g", sparq_attn_variant_name(v), (long long)r, (double)lse);
        }
    }
    for (size_t j = 0; j < nq; j++) b.q[j] *= 1000.0f;
    for (int causal = 0; causal <= 1; causal++) {
      o = sparq_attn_options_default(), o.causal = causal, o.lse = b.lse;
      if (!run_variant(&b, v, &o)) continue;
      for (size_t j = 0; j < nq; j++)
        if (!isfinite(b.o[j])) fail_msg("%s: logits x1000 give %g at %zu", sparq_attn_variant_name(v), (double)b.o[j], j);
      for (size_t j = 0; j < attn_l_count(&s); j++) assert_true(isfinite(b.lse[j]));
    }
    /* constant K: uniform weights, O = mean over the visible keys of V */
    for (size_t j = 0; j < nk; j++) b.k[j] = 0.25f * (float)(j % (size_t)s.head_dim) - 3.0f;
    for (int causal = 0; causal <= 1; causal++) {
      o = sparq_attn_options_default(), o.causal = causal;
      if (!run_variant(&b, v, &o)) continue;
      /* uniform weights are exact in every variant; what remains is the
       * rounding of V: none (FP32), FP16 (sage1, sage_cpu) or E4M3 with 3
       * mantissa bits (sage2_*: up to 1/16 of |v| when a row sees one key) */
      const double tol = is_fp32(v) ? 1e-5 : v == SPARQ_ATTN_SAGE1 || v == SPARQ_ATTN_SAGE_CPU ? 5e-3 : 0.07;
      for (int64_t h = 0; h < s.q_heads; h++)
        for (int64_t r = 0; r < s.q_len; r += 7)
          for (int64_t c = 0; c < s.head_dim; c++) {
            const int64_t n = causal ? r + 1 : s.kv_len;
            double mean = 0, vmax = 0;
            for (int64_t j = 0; j < n; j++) {
              double x = b.v[(h * s.kv_len + j) * s.head_dim + c];
              mean += x / (double)n;
              vmax = fabs(x) > vmax ? fabs(x) : vmax;
            }
            double got = b.o[(h * s.q_len + r) * s.head_dim + c];
            if (fabs(got - mean) > tol * (1 + vmax))
              fail_msg("%s causal %d: constant K row %lld col %lld: %g, mean(V) %g", sparq_attn_variant_name(v), causal,
                       (long long)r, (long long)c, got, mean);
          }
    }
    attn_bufs_free(&b);
  }
}

/* A NaN in one row of Q, K or V must not crash or hang any variant. The FP32
 * variants keep it in the rows that read it: a NaN query row stays alone. */
static void nan_rows_do_not_crash(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(1, 1, 1, 130, 130, 32);
  for (int i = 0; i < NVARIANTS; i++)
    for (int which = 0; which < 3; which++) {
      const sparq_attn_variant v = all_variants[i];
      attn_bufs b = attn_bufs_make(&s, 1, SPARQ_ATTN_HND, 3);
      float *t = which == 0 ? b.q : which == 1 ? b.k : b.v;
      for (int64_t c = 0; c < s.head_dim; c++) t[70 * s.head_dim + c] = NAN;
      sparq_attn_options o = sparq_attn_options_default();
      o.variant = v, o.causal = true;
      sparq_status st = sparq_attention(b.q, b.k, b.v, b.o, &s, &o);
      assert_true(st == SPARQ_OK || st == SPARQ_ERR_ARG || st == SPARQ_ERR_UNSUPPORTED);
      if (st == SPARQ_ERR_ARG) assert_non_null(strstr(sparq_last_error(), "NaN"));
      if (st == SPARQ_OK && is_fp32(v)) {
        /* rows before 70 never see key 70 (causal), and only row 70 reads query 70 */
        for (int64_t j = 0; j < 70 * s.head_dim; j++) assert_true(isfinite(b.o[j]));
        if (which == 0)
          for (int64_t j = 71 * s.head_dim; j < s.q_len * s.head_dim; j++) assert_true(isfinite(b.o[j]));
      }
      attn_bufs_free(&b);
    }
}

/* Every variant on the awkward lengths and head dims: finite, close
 * to the oracle, and the same bits at 1 and 2 threads. */
static void awkward_sizes_and_threads_every_variant(void **state) {
  (void)state;
  const int before = sparq_threads();
  const int64_t lens[] = {1, 63, 65, 127, 129, 1000};
  const int64_t dims[] = {32, 80, 96, 160, 256};
  for (int li = 0; li < 6 + 5; li++) {
    const int64_t n = li < 6 ? lens[li] : 100, d = li < 6 ? 64 : dims[li - 6];
    if (ATTN_TEST_SLOW && n == 1000) continue;
    sparq_attn_shape s = attn_shape(1, 2, 1, n, n, d);
    const size_t nq = attn_q_count(&s);
    attn_bufs ref = attn_bufs_make(&s, 2, SPARQ_ATTN_HND, 21);
    assert_int_equal(attn_run(&ref, SPARQ_ATTN_REF_F64, li % 2, 0, SPARQ_ATTN_HND), SPARQ_OK);
    for (int i = 0; i < NVARIANTS; i++) {
      const sparq_attn_variant v = all_variants[i];
      attn_bufs a = attn_bufs_make(&s, 2, SPARQ_ATTN_HND, 21), b = attn_bufs_make(&s, 2, SPARQ_ATTN_HND, 21);
      sparq_attn_options o = sparq_attn_options_default();
      o.causal = li % 2, o.lse = a.lse;
      sparq_set_threads(1);
      bool ran = run_variant(&a, v, &o);
      o.lse = b.lse;
      sparq_set_threads(2);
      if (ran) {
        assert_true(run_variant(&b, v, &o));
        if (!attn_bits_equal(a.o, b.o, nq) || !attn_bits_equal(a.lse, b.lse, attn_l_count(&s)))
          fail_msg("%s N=%lld d=%lld: 1 and 2 threads differ", sparq_attn_variant_name(v), (long long)n, (long long)d);
        sparq_attn_error e;
        sparq_attn_compare(ref.o, a.o, nq, &e);
        const double min_cos = is_fp32(v) ? 0.99999 : v == SPARQ_ATTN_SAGE2_4B ? 0.98 : 0.995;
        if (!(e.cos_sim >= min_cos) || e.nonfinite)
          fail_msg("%s N=%lld d=%lld: cos %.6f nonfinite %lld", sparq_attn_variant_name(v), (long long)n, (long long)d,
                   e.cos_sim, (long long)e.nonfinite);
      }
      attn_bufs_free(&a), attn_bufs_free(&b);
    }
    attn_bufs_free(&ref);
  }
  sparq_set_threads(before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_round_trip_and_defaults),
      cmocka_unit_test(bad_arguments_are_named),
      cmocka_unit_test(inputs_are_never_modified),
      cmocka_unit_test(masked_rows_huge_logits_constant_keys),
      cmocka_unit_test(nan_rows_do_not_crash),
      cmocka_unit_test(awkward_sizes_and_threads_every_variant),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
