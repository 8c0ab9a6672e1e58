/* Sage building blocks (spec §8 unit tests): group tables, the quantizer,
 * the vpdpbusd sign trick, the fused QK + softmax tile, exp2, the PV kernels
 * and the FP16 accumulator emulation, each SIMD kernel against its scalar
 * twin bit for bit on random and adversarial inputs; smoothing and dS
 * against exact arithmetic. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <assert.h>
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"
#include "test_attn_sage_util.h"

static const int64_t dims[] = {32, 64, 96, 128, 160, 256};
enum { NDIMS = sizeof dims / sizeof dims[0] };

static int8_t rand_s8(sparq_rng *r, int qmax) { return (int8_t)((int)sparq_rng_below(r, 2 * (uint64_t)qmax + 1) - qmax); }

/* ------------------------------------------------------------ groups */

static void group_tables_follow_the_spec(void **state) {
  (void)state;
  /* per_thread Q: 8 groups of 4 tokens {t : t mod 8 = g} per 32-token slice */
  for (int64_t t = 0; t < 96; t++) {
    assert_int_equal(sage_q_group(SPARQ_ATTN_GRAN_PER_THREAD, t), (t / 32) * 8 + t % 8);
    assert_int_equal(sage_q_group(SPARQ_ATTN_GRAN_PER_WARP, t), t / 32);
    assert_int_equal(sage_q_group(SPARQ_ATTN_GRAN_PER_BLOCK, t), t / 128);
    assert_int_equal(sage_q_group(SPARQ_ATTN_GRAN_PER_TOKEN, t), t);
  }
  int count[8] = {0};
  for (int64_t t = 32; t < 64; t++) count[sage_q_group(SPARQ_ATTN_GRAN_PER_THREAD, t) - 8]++;
  for (int g = 0; g < 8; g++) assert_int_equal(count[g], 4);
  /* per_thread K: 4 groups of 16 tokens {8j + 2g, 8j + 2g + 1} per 64-token block */
  for (int64_t blk = 0; blk < 3; blk++)
    for (int64_t g = 0; g < 4; g++)
      for (int64_t j = 0; j < 8; j++)
        for (int64_t e = 0; e < 2; e++) {
          int64_t t = blk * 64 + 8 * j + 2 * g + e;
          assert_int_equal(sage_k_group(SPARQ_ATTN_GRAN_PER_THREAD, t), blk * 4 + g);
        }
  assert_int_equal(sage_k_group(SPARQ_ATTN_GRAN_PER_WARP, 63), 0);
  assert_int_equal(sage_k_group(SPARQ_ATTN_GRAN_PER_BLOCK, 64), 1);
  assert_int_equal(sage_q_group_count(SPARQ_ATTN_GRAN_PER_THREAD, 33), 16);
  assert_int_equal(sage_k_group_count(SPARQ_ATTN_GRAN_PER_THREAD, 65), 8);
  assert_int_equal(sage_q_group_count(SPARQ_ATTN_GRAN_PER_BLOCK, 129), 2);
  assert_int_equal(sage_k_group_count(SPARQ_ATTN_GRAN_PER_TOKEN, 7), 7);
}

/* --------------------------------------------------------- quantizer */

static void quantizer_is_symmetric_clamped_and_twins_agree(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(11, 0);
  const int64_t n = 70, dp = 96;
  float *x = sparq_alloc((size_t)(n * dp) * sizeof(float), "x"), *neg = sparq_alloc((size_t)(n * dp) * 4, "neg");
  int8_t *q = sparq_alloc((size_t)(n * dp), "q"), *qn = sparq_alloc((size_t)(n * dp), "qn");
  float amax[128], scale[70], scale_n[70], sub[96];
  sparq_rng_fill_normal(&rng, x, (size_t)(n * dp), 0, 1);
  sparq_rng_fill_normal(&rng, sub, 96, 0, 1);
  x[5] = 300.0f;              /* an outlier dominates its group */
  for (int64_t c = 0; c < dp; c++) x[3 * dp + c] = 0.0f; /* an all-zero row */
  for (size_t i = 0; i < (size_t)(n * dp); i++) neg[i] = -x[i];
  for (int qmax = 7; qmax <= 127; qmax += 120)
    for (int g = SPARQ_ATTN_GRAN_PER_THREAD; g <= SPARQ_ATTN_GRAN_PER_TOKEN; g++) {
      sage_quantize_rows(x, n, dp, NULL, NULL, qmax, (sparq_attn_granularity)g, true, amax, q, scale);
      sage_quantize_rows(neg, n, dp, NULL, NULL, qmax, (sparq_attn_granularity)g, true, amax, qn, scale_n);
      for (int64_t i = 0; i < n * dp; i++) {
        assert_int_equal(q[i], -qn[i]);
        assert_true(q[i] >= -qmax && q[i] <= qmax);
        /* within half a step of the input */
        assert_true(fabsf((float)q[i] * scale[i / dp] - x[i]) <= 0.5f * scale[i / dp] * 1.0001f);
      }
      assert_true(q[5] == qmax);
      /* delta = max / qmax + 1e-7 */
      if (g == SPARQ_ATTN_GRAN_PER_TOKEN) assert_true(scale[3] == 1e-7f);
    }
  /* the row kernels: AVX-512 twins give the same bits, with and without a
   * subtracted mean, on outliers too */
  int8_t a[96], b[96];
  for (int64_t t = 0; t < n; t++) {
    const float *s = t % 2 ? sub : NULL;
    float m = sage_row_absmax_ref(x + t * dp, s, dp);
    sage_row_quant_ref(x + t * dp, s, dp, m / 127.0f + 1e-7f, 127.0f, a);
#ifdef SPARQ_HAVE_X86_SIMD
    if (sparq_isa_active() == SPARQ_ISA_AVX512) {
      assert_true(sage_row_absmax_avx512(x + t * dp, s, dp) == m);
      sage_row_quant_avx512(x + t * dp, s, dp, m / 127.0f + 1e-7f, 127.0f, b);
      assert_memory_equal(a, b, 96);
    }
#endif
    (void)b;
  }
  /* a non-finite row gets x-hat 0 and a NaN scale; the others are untouched */
  x[2 * dp + 7] = NAN;
  sage_quantize_rows(x, n, dp, NULL, NULL, 127, SPARQ_ATTN_GRAN_PER_BLOCK, false, amax, q, scale);
  assert_true(isnan(scale[2]) && !isnan(scale[1]));
  for (int64_t c = 0; c < dp; c++) assert_int_equal(q[2 * dp + c], 0);
  sparq_free(x), sparq_free(neg), sparq_free(q), sparq_free(qn);
}

static void packed_k_round_trips_with_sums(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(12, 0);
  const int64_t nk = 70, nk_pad = 128, dp = 96;
  int8_t k[70 * 96], packed[128 * 96];
  int32_t corr[128];
  for (int i = 0; i < 70 * 96; i++) k[i] = rand_s8(&rng, 127);
  sage_pack_k(k, nk, nk_pad, dp, packed, corr);
  for (int64_t j = 0; j < nk_pad; j++) {
    int32_t sum = 0;
    for (int64_t c = 0; c < dp; c++) {
      int8_t want = j < nk ? k[j * dp + c] : 0;
      assert_int_equal(sage_packed_k_at(packed, dp, j, c), want);
      sum += want;
    }
    assert_int_equal(corr[j], 128 * sum);
  }
}

/* The pre-pass kernels added for speed: each AVX-512 twin against its
 * scalar one, bit for bit, on rows with NaN, inf, denormals, -0 and
 * outliers, at widths that are and are not multiples of 16; and the
 * per-token quantizer's single pass against the row kernels. */
static void prepass_twins_agree(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(13, 0);
  const int64_t widths[] = {32, 40, 96, 100, 256};
  for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
    const int64_t dp = widths[wi], nk = 37, nk_pad = 48;
    float *x = sparq_alloc((size_t)(nk * dp) * sizeof(float), "x");
    sparq_rng_fill_normal(&rng, x, (size_t)(nk * dp), 0, 3);
    x[0] = 1e30f, x[1] = -0.0f, x[2] = 1e-40f, x[3] = -3e-39f; /* outlier, -0, denormals */
    x[5 * dp + dp - 1] = NAN;                                  /* in the last lane of a row */
    x[9 * dp + dp / 2] = INFINITY;
    x[11 * dp] = -INFINITY;
    x[20 * dp + 3] = 65504.0f * 65504.0f;
    x[nk * dp - 1] = NAN; /* the last row, for the V packer's odd tail */
    double acc_ref[256] = {0}, acc_simd[256] = {0};
    uint16_t *v_ref = sparq_alloc((size_t)(nk_pad * dp) * 2, "v"), *v_simd = sparq_alloc((size_t)(nk_pad * dp) * 2, "v");
    int8_t *k8 = sparq_alloc((size_t)(nk * dp), "k8"), *pk_ref = sparq_alloc((size_t)(nk_pad * dp), "pk"),
           *pk_simd = sparq_alloc((size_t)(nk_pad * dp), "pk");
    int32_t corr_ref[48], corr_simd[48];
    for (int64_t i = 0; i < nk * dp; i++) k8[i] = rand_s8(&rng, 127);
    k8[0] = -127, k8[dp - 1] = 127;
    sage_pack_v_bf16_ref(x, nk, nk_pad, dp, v_ref);
    sage_pack_k_ref(k8, nk, nk_pad, dp, pk_ref, corr_ref);
    for (int64_t t = 0; t < nk; t++) {
      const bool fin = sage_row_finite_ref(x + t * dp, dp);
      assert_true(fin == !(t == 5 || t == 9 || t == 11 || t == nk - 1));
      if (fin) sage_row_add_f64_ref(x + t * dp, dp, acc_ref);
#ifdef SPARQ_HAVE_X86_SIMD
      if (sparq_isa_active() == SPARQ_ISA_AVX512) {
        assert_true(sage_row_finite_avx512(x + t * dp, dp) == fin);
        if (fin) sage_row_add_f64_avx512(x + t * dp, dp, acc_simd);
      }
#endif
    }
    /* the V packer's layout: key j, channel c at [j / 2][c][j % 2], zeros past nk */
    for (int64_t j = 0; j < nk_pad; j++)
      for (int64_t c = 0; c < dp; c++)
        assert_int_equal(v_ref[(j / 2) * dp * 2 + 2 * c + j % 2], j < nk ? sparq_bf16_from_f32(x[j * dp + c]) : 0);
#ifdef SPARQ_HAVE_X86_SIMD
    if (sparq_isa_active() == SPARQ_ISA_AVX512) {
      assert_memory_equal(acc_ref, acc_simd, (size_t)dp * sizeof(double));
      sage_pack_v_bf16_avx512(x, nk, nk_pad, dp, v_simd);
      assert_memory_equal(v_ref, v_simd, (size_t)(nk_pad * dp) * 2);
      sage_pack_k_avx512(k8, nk, nk_pad, dp, pk_simd, corr_simd);
      assert_memory_equal(pk_ref, pk_simd, (size_t)(nk_pad * dp));
      assert_memory_equal(corr_ref, corr_simd, sizeof corr_ref);
    }
#endif
    /* per_token: one pass per row, the same bits as the row kernels */
    if (dp % 32 == 0) {
      float scale[37], sub[256];
      int8_t *q = sparq_alloc((size_t)(nk * dp), "q"), row[256];
      sparq_rng_fill_normal(&rng, sub, (size_t)dp, 0, 1);
      sage_quantize_rows(x, nk, dp, sub, NULL, 127, SPARQ_ATTN_GRAN_PER_TOKEN, false, NULL, q, scale);
      for (int64_t t = 0; t < nk; t++) {
        if (!sage_row_finite_ref(x + t * dp, dp)) {
          assert_true(isnan(scale[t]));
          continue;
        }
        const float delta = sage_row_absmax_ref(x + t * dp, sub, dp) / 127.0f + 1e-7f;
        assert_true(scale[t] == delta);
        sage_row_quant_ref(x + t * dp, sub, dp, delta, 127.0f, row);
        assert_memory_equal(q + t * dp, row, (size_t)dp);
      }
      sparq_free(q);
    }
    (void)acc_simd, (void)corr_simd;
    sparq_free(x), sparq_free(v_ref), sparq_free(v_simd), sparq_free(k8), sparq_free(pk_ref), sparq_free(pk_simd);
  }
}

/* ------------------------------------------------------------ QK tile */

typedef struct tile_data {
  uint8_t q[4 * 256];
  int8_t k_rows[64 * 256], k[64 * 256];
  int32_t corr[64];
  float q_scale[4], k_scale[64], ds[4][64];
} tile_data;

static void tile_fill(tile_data *d, sparq_rng *rng, int64_t dp, int qmax) {
  for (int64_t i = 0; i < 4 * dp; i++) d->q[i] = (uint8_t)(rand_s8(rng, qmax) + 128);
  for (int64_t i = 0; i < 64 * dp; i++) d->k_rows[i] = rand_s8(rng, 127);
  /* extremes: the sign trick's worst case */
  for (int64_t c = 0; c < dp; c++) d->q[c] = (uint8_t)(128 + qmax), d->k_rows[c] = -127;
  sage_pack_k(d->k_rows, 64, 64, dp, d->k, d->corr);
  for (int r = 0; r < 4; r++) d->q_scale[r] = 1e-4f * (1.0f + sparq_rng_uniform(rng));
  for (int j = 0; j < 64; j++) d->k_scale[j] = 1e-2f * (0.5f + sparq_rng_uniform(rng));
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 64; j++) d->ds[r][j] = 3.0f * sparq_rng_normal(rng);
}

static sage_qk_tile tile_make(tile_data *d, int64_t dp, void *p, sage_row_state *st, float *alpha) {
  sage_qk_tile t;
  memset(&t, 0, sizeof t);
  t.q = d->q, t.q_scale = d->q_scale, t.k = d->k, t.k_corr = d->corr, t.k_scale = d->k_scale;
  t.dp = dp, t.row0 = 100, t.key0 = 64, t.kv_len = 1000;
  t.sigma = 8.0f, t.fmt = SAGE_P_F32, t.u8_scale = 255.0f / 256.0f;
  t.p = p, t.state = st, t.alpha = alpha;
  return t;
}

static void sign_trick_sums_equal_plain_int_sums(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(13, 0);
  static tile_data d;
  int32_t s_ref[256], s_simd[256];
  for (int di = 0; di < NDIMS; di++)
    for (int qmax = 7; qmax <= 127; qmax += 120) {
      const int64_t dp = dims[di];
      tile_fill(&d, &rng, dp, qmax);
      sage_qk_tile t = tile_make(&d, dp, NULL, NULL, NULL);
      sage_qk_scores_ref(&t, s_ref);
      for (int r = 0; r < 4; r++)
        for (int j = 0; j < 64; j++) {
          int32_t want = 0;
          for (int64_t c = 0; c < dp; c++) want += ((int32_t)d.q[r * dp + c] - 128) * (int32_t)d.k_rows[j * dp + c];
          assert_int_equal(s_ref[r * 64 + j], want);
        }
#ifdef SPARQ_HAVE_X86_SIMD
      if (sparq_has_vnni()) {
        sage_qk_scores_vnni(&t, s_simd);
        assert_memory_equal(s_ref, s_simd, sizeof s_ref);
      }
#endif
      (void)s_simd;
    }
}

/* refine_k: K = K-hat + K-lo / 128 meets Q in one int32 sum per score,
 * 128 S-hat + S-lo minus the fine offset sums, equal to plain int
 * arithmetic in both paths, and the fused tile stays bit-exact with its
 * scalar twin; K-lo at its extremes (+-64) with Q-hat at 255 is the largest
 * sum. */
static void refined_sums_equal_plain_int_sums(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(16, 0);
  static tile_data d;
  static int8_t lo_rows[64 * 256], lo[64 * 256];
  int32_t lo_corr[64], fine[64], s_ref[256];
  for (int di = 0; di < NDIMS; di++) {
    const int64_t dp = dims[di];
    tile_fill(&d, &rng, dp, 127);
    for (int64_t i = 0; i < 64 * dp; i++) lo_rows[i] = rand_s8(&rng, 64);
    for (int64_t c = 0; c < dp; c++) lo_rows[c] = 64, lo_rows[dp + c] = -64;
    sage_pack_k(lo_rows, 64, 64, dp, lo, lo_corr);
    for (int j = 0; j < 64; j++) fine[j] = 128 * d.corr[j] + lo_corr[j];
    sage_qk_tile t = tile_make(&d, dp, NULL, NULL, NULL);
    t.k_lo = lo, t.k_corr = fine;
    sage_qk_scores_ref(&t, s_ref);
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 64; j++) {
        int64_t want = 0;
        for (int64_t c = 0; c < dp; c++)
          want += ((int64_t)d.q[r * dp + c] - 128) * (128 * (int64_t)d.k_rows[j * dp + c] + lo_rows[j * dp + c]);
        assert_true(want == (int64_t)s_ref[r * 64 + j]);
      }
#ifdef SPARQ_HAVE_X86_SIMD
    if (sparq_has_vnni() && sparq_has_bf16()) {
      int32_t s_simd[256];
      sage_qk_scores_vnni(&t, s_simd);
      assert_memory_equal(s_ref, s_simd, sizeof s_ref);
      float p1[4 * 64], p2[4 * 64], a1[4], a2[4];
      sage_row_state s1[4] = {{-INFINITY, 0}, {2.0f, 3.0f}, {-INFINITY, 0}, {-1.0f, 9.0f}}, s2[4];
      memcpy(s2, s1, sizeof s2);
      memset(p1, 0x55, sizeof p1), memset(p2, 0x55, sizeof p2); /* BF16 fills half */
      float fine_scale[64];
      for (int j = 0; j < 64; j++) fine_scale[j] = d.k_scale[j] / 128.0f;
      sage_qk_tile t1 = tile_make(&d, dp, p1, s1, a1), t2 = tile_make(&d, dp, p2, s2, a2);
      t1.k_lo = t2.k_lo = lo, t1.k_corr = t2.k_corr = fine, t1.k_scale = t2.k_scale = fine_scale;
      t1.fmt = t2.fmt = SAGE_P_BF16;
      sage_qk_tile_ref(&t1);
      sage_qk_tile_vnni(&t2);
      assert_memory_equal(p1, p2, sizeof p1);
      assert_memory_equal(s1, s2, sizeof s1);
      assert_memory_equal(a1, a2, sizeof a1);
    }
#endif
  }
}

/* Runs the tile through both paths from the same state and compares every
 * output bit (NaN equals NaN). */
static void compare_tile(tile_data *d, int64_t dp, sage_p_format fmt, bool use_ds, bool masked, int64_t offset,
                         int64_t kv_len, const sage_row_state *st0, const char *what) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (!(sparq_has_vnni() && sparq_has_bf16())) return;
  float p1[4 * 64], p2[4 * 64], a1[4], a2[4];
  sage_row_state s1[4], s2[4];
  memcpy(s1, st0, sizeof s1), memcpy(s2, st0, sizeof s2);
  memset(p1, 0x55, sizeof p1), memset(p2, 0x55, sizeof p2);
  sage_qk_tile t1 = tile_make(d, dp, p1, s1, a1), t2 = tile_make(d, dp, p2, s2, a2);
  for (int r = 0; r < 4; r++) t1.ds[r] = t2.ds[r] = use_ds ? d->ds[r] : NULL;
  t1.fmt = t2.fmt = fmt;
  t1.masked = t2.masked = masked;
  t1.causal = t2.causal = masked;
  t1.causal_offset = t2.causal_offset = offset;
  t1.kv_len = t2.kv_len = kv_len;
  sage_qk_tile_ref(&t1);
  sage_qk_tile_vnni(&t2);
  if (memcmp(p1, p2, sizeof p1) != 0) fail_msg("%s dp=%lld fmt=%d: P tiles differ", what, (long long)dp, (int)fmt);
  for (int r = 0; r < 4; r++) {
    if (!(s1[r].m == s2[r].m || (isnan(s1[r].m) && isnan(s2[r].m))) || sage_bits_differ(&s1[r].l, &s2[r].l, 1) ||
        sage_bits_differ(&a1[r], &a2[r], 1))
      fail_msg("%s dp=%lld fmt=%d row %d: state (%g %g %g) vs (%g %g %g)", what, (long long)dp, (int)fmt, r,
               (double)s1[r].m, (double)s1[r].l, (double)a1[r], (double)s2[r].m, (double)s2[r].l, (double)a2[r]);
  }
#else
  (void)d, (void)dp, (void)fmt, (void)use_ds, (void)masked, (void)offset, (void)kv_len, (void)st0, (void)what;
#endif
}

static void qk_softmax_tile_simd_matches_scalar(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(14, 0);
  static tile_data d;
  const sage_row_state fresh[4] = {{-INFINITY, 0}, {-INFINITY, 0}, {-INFINITY, 0}, {-INFINITY, 0}};
  const sage_row_state warm[4] = {{3.0f, 17.5f}, {-INFINITY, 0}, {40.0f, 1.0f}, {-2.0f, 300.0f}};
  for (int di = 0; di < NDIMS; di++) {
    const int64_t dp = dims[di];
    tile_fill(&d, &rng, dp, 127);
    for (int fmt = SAGE_P_F32; fmt <= SAGE_P_E4M3_F16; fmt++) {
      compare_tile(&d, dp, (sage_p_format)fmt, false, false, 0, 1000, fresh, "plain");
      compare_tile(&d, dp, (sage_p_format)fmt, true, false, 0, 1000, warm, "dS");
      /* the diagonal block: rows 100..103 see keys up to 100 + r + offset */
      for (int64_t off = -40; off <= 30; off += 7)
        compare_tile(&d, dp, (sage_p_format)fmt, true, true, off, 1000, warm, "causal");
      /* keys past kv_len, and every key of the block masked for every row */
      compare_tile(&d, dp, (sage_p_format)fmt, false, true, 100, 64 + 37, fresh, "tail");
      compare_tile(&d, dp, (sage_p_format)fmt, false, true, -100, 1000, fresh, "all masked");
    }
    /* sharp rows (logits x 1000), a NaN key scale, a NaN query scale */
    for (int r = 0; r < 4; r++) d.q_scale[r] *= 1000.0f;
    compare_tile(&d, dp, SAGE_P_BF16, true, false, 0, 1000, warm, "sharp");
    d.k_scale[17] = NAN;
    compare_tile(&d, dp, SAGE_P_F16, false, false, 0, 1000, fresh, "nan key");
    d.q_scale[2] = NAN;
    compare_tile(&d, dp, SAGE_P_F32, true, true, 5, 1000, warm, "nan query");
    compare_tile(&d, dp, SAGE_P_E4M3_BF16, true, true, 5, 1000, warm, "nan query e4m3");
    compare_tile(&d, dp, SAGE_P_E4M3_F16, false, false, 0, 1000, fresh, "nan e4m3 f16");
  }
}

/* A tile's outputs make sense: P-tilde <= 2^sigma with the max at 2^sigma,
 * masked keys exactly 0, l = sum P-tilde. */
static void softmax_tile_outputs_are_a_softmax(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(15, 0);
  static tile_data d;
  tile_fill(&d, &rng, 64, 127);
  float p[4 * 64], alpha[4];
  sage_row_state st[4] = {{-INFINITY, 0}, {-INFINITY, 0}, {-INFINITY, 0}, {-INFINITY, 0}};
  sage_qk_tile t = tile_make(&d, 64, p, st, alpha);
  t.masked = t.causal = true;
  t.causal_offset = -70; /* row 100 + r sees keys <= 30 + r of this block (0..63) */
  t.row0 = 100, t.key0 = 0;
  sage_qk_tile_ref(&t);
  for (int r = 0; r < 4; r++) {
    float mx = 0, sum = 0;
    for (int j = 0; j < 64; j++) {
      if (j > 30 + r) assert_true(p[r * 64 + j] == 0.0f);
      mx = p[r * 64 + j] > mx ? p[r * 64 + j] : mx;
      sum += p[r * 64 + j];
    }
    assert_true(mx == 256.0f);
    assert_true(fabsf(sum - st[r].l) <= 1e-5f * sum);
    assert_true(alpha[r] == 0.0f); /* from m = -inf */
  }
}

/* --------------------------------------------------------------- exp2 */

static void exp2_is_accurate_and_exact_at_the_edges(void **state) {
  (void)state;
  double worst = 0;
  for (int i = 0; i <= 200000; i++) {
    float x = -125.0f + 134.0f * (float)i / 200000.0f;
    double want = exp2((double)x), got = sage_exp2(x);
    double rel = fabs(got - want) / want;
    if (rel > worst) worst = rel;
  }
  assert_true(worst < 2.5e-7);
  assert_true(sage_exp2(0.0f) == 1.0f);
  assert_true(sage_exp2(8.0f) == 256.0f);
  assert_true(sage_exp2(-3.0f) == 0.125f);
  assert_true(sage_exp2(-125.5f) == 0.0f);
  assert_true(sage_exp2(-INFINITY) == 0.0f);
  assert_true(sage_exp2(-3e38f) == 0.0f);
  assert_true(isnan(sage_exp2(NAN)));
  assert_true(sage_exp2(-125.0f) > 0.0f && sage_exp2(-125.0f) >= FLT_MIN);
}

/* ---------------------------------------------------------------- PV */

static uint16_t rand_bf16(sparq_rng *r, float scale) { return sparq_bf16_from_f32(scale * sparq_rng_normal(r)); }
static uint16_t rand_f16(sparq_rng *r, float scale) { return sparq_f16_from_f32(scale * sparq_rng_normal(r)); }

static void pv_kernels_simd_match_scalar(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(16, 0);
  enum { ROWS = 12 };
  static uint16_t p16[SAGE_P_ROWS * 64], v16[64 * 256];
  static uint8_t p8[SAGE_P_ROWS * 64];
  static int8_t v8[64 * 256];
  static float o1[SAGE_P_ROWS * 256], o2[SAGE_P_ROWS * 256], alpha[SAGE_P_ROWS];
  static_assert((int)ROWS <= (int)SAGE_P_ROWS, "test rows fit a P tile");
  for (int di = 0; di < NDIMS; di++) {
    const int64_t dp = dims[di];
    for (int i = 0; i < ROWS * 64; i++) p16[i] = sparq_bf16_from_f32(256.0f * sparq_rng_uniform(&rng));
    for (int i = 0; i < 64 * dp; i++) v16[i] = rand_bf16(&rng, i % 7 ? 1.0f : 1e4f);
    p16[3] = sparq_bf16_from_f32(NAN);
    for (int r = 0; r < ROWS; r++) alpha[r] = r % 3 ? sparq_rng_uniform(&rng) : 0.0f;
    /* all pairs, and per 4 rows a prefix of them (none, part of the first
     * FP22 step, past it) */
    static const uint8_t some_pairs[ROWS / 4] = {0, 11, 23};
    for (int acc = SAGE_ACC_SINGLE_F32; acc <= SAGE_ACC_TWO_F22; acc++)
      for (int prefix = 0; prefix < 2; prefix++) {
        const uint8_t *np = prefix ? some_pairs : NULL;
        for (int i = 0; i < ROWS * dp; i++) o1[i] = o2[i] = sparq_rng_normal(&rng);
        sage_pv_bf16_ref(p16, v16, ROWS, dp, o1, alpha, (sage_accum)acc, np);
#ifdef SPARQ_HAVE_X86_SIMD
        if (sparq_has_bf16()) {
          sage_pv_bf16_avx512bf16(p16, v16, ROWS, dp, o2, alpha, (sage_accum)acc, np);
          if (sage_bits_differ(o1, o2, (size_t)(ROWS * dp)))
            fail_msg("bf16 pv dp=%lld accumulation %d prefix %d differs", (long long)dp, acc, prefix);
        }
#endif
      }
    /* skipping pairs whose P-tilde is 0 gives the same values as summing them */
    {
      static uint16_t pz[SAGE_P_ROWS * 64];
      static float oz[SAGE_P_ROWS * 256];
      memcpy(pz, p16, sizeof pz);
      pz[3] = 0; /* no NaN: 0 x NaN would differ from a skip */
      for (int r = 0; r < ROWS; r++)
        for (int k = 2 * some_pairs[r / 4]; k < 64; k++) pz[r * 64 + k] = 0;
      for (int i = 0; i < ROWS * dp; i++) o1[i] = oz[i] = sparq_rng_normal(&rng);
      sage_pv_bf16_ref(pz, v16, ROWS, dp, o1, alpha, SAGE_ACC_TWO_F32, NULL);
      sage_pv_bf16_ref(pz, v16, ROWS, dp, oz, alpha, SAGE_ACC_TWO_F32, some_pairs);
      for (int i = 0; i < ROWS * dp; i++) assert_true(o1[i] == oz[i]);
    }
    /* u8 x s8, extremes included */
    for (int i = 0; i < ROWS * 64; i++) p8[i] = (uint8_t)sparq_rng_below(&rng, 256);
    for (int i = 0; i < 64 * dp; i++) v8[i] = rand_s8(&rng, 127);
    p8[0] = 255, v8[0] = -127;
    for (int i = 0; i < ROWS * dp; i++) o1[i] = o2[i] = sparq_rng_normal(&rng);
    sage_pv_u8_ref(p8, v8, ROWS, dp, o1, alpha);
#ifdef SPARQ_HAVE_X86_SIMD
    if (sparq_has_vnni()) {
      sage_pv_u8_vnni(p8, v8, ROWS, dp, o2, alpha);
      assert_int_equal(sage_bits_differ(o1, o2, (size_t)(ROWS * dp)), 0);
    }
#endif
    /* FP16 accumulator: sums near the top of the FP16 range and tiny terms */
    for (int i = 0; i < ROWS * 64; i++) p16[i] = sparq_f16_from_f32(256.0f * sparq_rng_uniform(&rng));
    for (int i = 0; i < 64 * dp; i++) v16[i] = rand_f16(&rng, i % 5 ? 1.0f : 1e-3f);
    for (int i = 0; i < ROWS * dp; i++) o1[i] = o2[i] = sparq_rng_normal(&rng);
    sage_pv_f16_ref(p16, v16, ROWS, dp, o1, alpha);
#ifdef SPARQ_HAVE_X86_SIMD
    if (sparq_isa_active() == SPARQ_ISA_AVX512) {
      sage_pv_f16_avx512(p16, v16, ROWS, dp, o2, alpha);
      assert_int_equal(sage_bits_differ(o1, o2, (size_t)(ROWS * dp)), 0);
      if (sparq_cpu()->avx512fp16 && sage_pv_f16_hw_built()) {
        /* the real FP16 accumulator, where this CPU has one */
        for (int i = 0; i < ROWS * dp; i++) o1[i] = o2[i] = (float)i;
        sage_pv_f16_ref(p16, v16, ROWS, dp, o1, alpha);
        sage_pv_f16_avx512fp16(p16, v16, ROWS, dp, o2, alpha);
        assert_int_equal(sage_bits_differ(o1, o2, (size_t)(ROWS * dp)), 0);
      }
    }
#endif
  }
}

/* The correctly rounded FP16 value of x (double), found among the
 * neighbours of a first guess; ties go to the even code. */
static float f16_round_oracle(double x) {
  uint16_t c = sparq_f16_from_f32((float)x);
  float best = sparq_f16_to_f32(c);
  uint16_t best_code = c;
  for (int dc = -1; dc <= 1; dc += 2) {
    uint16_t n = (uint16_t)(c + dc);
    if ((n & 0x7C00u) == 0x7C00u) continue;
    float y = sparq_f16_to_f32(n);
    double e1 = fabs((double)y - x), e0 = fabs((double)best - x);
    if (e1 < e0 || (e1 == e0 && !(n & 1u) && (best_code & 1u))) best = y, best_code = n;
  }
  return best;
}

static void f16_fma_emulation_rounds_once(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(17, 0);
  for (int i = 0; i < 200000; i++) {
    float acc = sparq_f16_to_f32(rand_f16(&rng, 1000.0f));
    float p = sparq_f16_to_f32(sparq_f16_from_f32(256.0f * sparq_rng_uniform(&rng)));
    float v = sparq_f16_to_f32(rand_f16(&rng, i % 2 ? 1.0f : 1e-3f));
    double exact = (double)acc + (double)p * (double)v;
    assert_true(sage_f16_fma(acc, p, v) == f16_round_oracle(exact));
  }
  /* a double rounding trap: 1 + (2^-11 + 2^-22) must round up to 1 + 2^-10 */
  float p = sparq_f16_to_f32(sparq_f16_from_f32(1.0f + 1.0f / 1024.0f));
  float v = 1.0f / 2048.0f;
  assert_true(sage_f16_fma(1.0f, p, v) == 1.0f + 1.0f / 1024.0f);
}

/* The inline FP16 helpers of the scalar twins equal the num/ codecs bit for
 * bit: every binary16 code, and FP32 inputs around every rounding boundary. */
static void inline_f16_helpers_match_the_codecs(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 65536; h++) {
    float a = sage_f16_to_f32((uint16_t)h), b = sparq_f16_to_f32((uint16_t)h);
    assert_memory_equal(&a, &b, 4);
  }
  sparq_rng rng = sparq_rng_make(18, 0);
  for (int i = 0; i < 2000000; i++) {
    uint32_t u = sparq_rng_u32(&rng);
    if (i % 2) u = (u & 0x80001FFFu) | (((0x33000000u + (u & 0x0FFFFFFFu) % 0x14800000u)) & 0x7FFFE000u); /* fp16 range */
    if (i % 7 == 0) u ^= 0x1000u; /* near a tie */
    float x, a, b;
    memcpy(&x, &u, 4);
    a = sage_f16_round(x);
    b = sparq_f16_to_f32(sparq_f16_from_f32(x));
    if (memcmp(&a, &b, 4)) fail_msg("x bits 0x%08x: %a vs %a", u, (double)a, (double)b);
  }
  const float edges[] = {65504.0f, 65519.99f, 65520.0f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.98e-08f,
                         INFINITY, -INFINITY, NAN, -0.0f, 1.0f + 1.0f / 2048.0f};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    float a = sage_f16_round(edges[i]), b = sparq_f16_to_f32(sparq_f16_from_f32(edges[i]));
    assert_memory_equal(&a, &b, 4);
  }
}

/* The softmax's inline E4M3 rounding equals the codec round trip, and the
 * operand bits equal the codecs' encodings of that value. */
static void inline_e4m3_rounding_matches_the_codec(void **state) {
  (void)state;
  sparq_rng rng = sparq_rng_make(19, 0);
  for (int i = 0; i < 2000000; i++) {
    uint32_t u = sparq_rng_u32(&rng);
    if (i % 2) u = (u & 0x800FFFFFu) | ((0x3A000000u + (u >> 4) % 0x0A000000u) & 0x7FF00000u); /* 2^-11 .. 2^9 */
    if (i % 5 == 0) u = (u & 0xFFF00000u) | 0x00080000u;                                       /* exact ties */
    float x, a, b;
    memcpy(&x, &u, 4);
    a = sage_e4m3_round(x);
    b = sparq_e4m3_to_f32(sparq_e4m3_from_f32(x));
    if (memcmp(&a, &b, 4)) fail_msg("x bits 0x%08x: %a vs %a", u, (double)a, (double)b);
    assert_int_equal(f32_bits(a) >> 16, sparq_bf16_from_f32(b));
    assert_int_equal(sage_exact_f16_bits(a), sparq_f16_from_f32(b));
  }
  const float edges[] = {448.0f, 463.9f, 464.0f, 1e30f, INFINITY, -INFINITY, NAN, -NAN, 0.0f, -0.0f,
                         0x1p-10f, 0x1.0001p-10f, 0x1p-9f, 0x1.8p-9f, 0x1.fp-7f, 0x1p-6f, 1.0625f, 1.1875f};
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    float a = sage_e4m3_round(edges[i]), b = sparq_e4m3_to_f32(sparq_e4m3_from_f32(edges[i]));
    assert_memory_equal(&a, &b, 4);
    assert_int_equal(sage_exact_f16_bits(a), sparq_f16_from_f32(b));
  }
}

static void e4m3_codes_round_trip(void **state) {
  (void)state;
  for (int c = 0; c < 256; c++) {
    float x = sparq_e4m3_to_f32((uint8_t)c);
    if ((c & 0x7F) == 0x7F) {
      assert_true(isnan(x));
      continue;
    }
    assert_int_equal(sparq_e4m3_from_f32(x), c == 0x80 ? 0x80 : c);
    /* every E4M3 value is exact in BF16 and FP16 */
    assert_true(sparq_bf16_to_f32(sparq_bf16_from_f32(x)) == x);
    assert_true(sparq_f16_to_f32(sparq_f16_from_f32(x)) == x);
  }
  /* ties to even between 1 (0x38) and 1.125 (0x39), and 1.125 and 1.25 (0x3A) */
  assert_int_equal(sparq_e4m3_from_f32(1.0625f), 0x38);
  assert_int_equal(sparq_e4m3_from_f32(1.1875f), 0x3A);
  assert_int_equal(sparq_e4m3_from_f32(1000.0f), 0x7E); /* saturates at 448 */
}

/* ------------------------------------------------- smoothing and dS */

/* Exact softmax(tau q k^T) v row of one query against n keys, in double. */
static void exact_row(const float *q, const float *k, const float *v, int64_t n, int64_t d, double tau, double *out) {
  double m = -INFINITY, l = 0, s[256];
  for (int64_t j = 0; j < n; j++) {
    double x = 0;
    for (int64_t c = 0; c < d; c++) x += (double)q[c] * k[j * d + c];
    s[j] = tau * x;
    m = s[j] > m ? s[j] : m;
  }
  for (int64_t c = 0; c < d; c++) out[c] = 0;
  for (int64_t j = 0; j < n; j++) {
    double p = exp(s[j] - m);
    l += p;
    for (int64_t c = 0; c < d; c++) out[c] += p * v[j * d + c];
  }
  for (int64_t c = 0; c < d; c++) out[c] /= l;
}

static void smooth_k_is_exact_without_quantization(void **state) {
  (void)state;
  const int64_t n = 200, d = 64;
  sage_case c = sage_case_make(1, 1, 1, n, n, d, 1, 21); /* D1: K has a large channel bias */
  float mean[64], *ks = sparq_alloc((size_t)(n * d) * sizeof(float), "K'");
  sage_mean_rows(c.k, n, d, mean);
  for (int64_t i = 0; i < n * d; i++) ks[i] = c.k[i] - mean[i % d];
  double a[64], b[64], worst = 0;
  for (int64_t i = 0; i < n; i += 7) {
    exact_row(c.q + i * d, c.k, c.v, n, d, 0.125, a);
    exact_row(c.q + i * d, ks, c.v, n, d, 0.125, b);
    for (int64_t x = 0; x < d; x++) worst = fmax(worst, fabs(a[x] - b[x]));
  }
  assert_true(worst <= 1e-5);
  sparq_free(ks);
  sage_case_free(&c);
}

static void delta_s_reconstructs_the_scores(void **state) {
  (void)state;
  const int64_t nq = 300, nk = 100, d = 96, nk_pad = 128, nqb = 3;
  sage_case c = sage_case_make(1, 1, 1, nq, nk, d, 3, 22); /* D3: Q and K both biased */
  float kmean[96], qmean[3 * 96], ds[3 * 128];
  sage_mean_rows(c.k, nk, d, kmean);
  for (int64_t b = 0; b < nqb; b++) sage_mean_rows(c.q + b * 128 * d, b < 2 ? 128 : nq - 256, d, qmean + b * d);
  sage_delta_s(qmean, nqb, c.k, kmean, nk, nk_pad, d, ds);
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < nq; i++) {
    const float *qm = qmean + (i / 128) * d;
    double rowc = 0; /* the dropped row constant q_i . k_mean */
    for (int64_t x = 0; x < d; x++) rowc += (double)c.q[i * d + x] * kmean[x];
    for (int64_t j = 0; j < nk; j++) {
      double full = 0, smooth = 0;
      for (int64_t x = 0; x < d; x++) {
        full += (double)c.q[i * d + x] * c.k[j * d + x];
        smooth += (double)(c.q[i * d + x] - qm[x]) * (double)(c.k[j * d + x] - kmean[x]);
      }
      worst = fmax(worst, fabs(smooth + ds[(i / 128) * nk_pad + j] + rowc - full));
      scale = fmax(scale, fabs(full));
    }
  }
  assert_true(worst <= 1e-5 * scale);
  for (int64_t j = nk; j < nk_pad; j++) assert_true(ds[j] == 0.0f);
  sage_case_free(&c);
}

int main(void) {
  sparq_thread_set_ftz(); /* as in every kernel region: the twins must agree under FTZ/DAZ */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(group_tables_follow_the_spec),
      cmocka_unit_test(quantizer_is_symmetric_clamped_and_twins_agree),
      cmocka_unit_test(packed_k_round_trips_with_sums),
      cmocka_unit_test(prepass_twins_agree),
      cmocka_unit_test(sign_trick_sums_equal_plain_int_sums),
      cmocka_unit_test(refined_sums_equal_plain_int_sums),
      cmocka_unit_test(qk_softmax_tile_simd_matches_scalar),
      cmocka_unit_test(softmax_tile_outputs_are_a_softmax),
      cmocka_unit_test(exp2_is_accurate_and_exact_at_the_edges),
      cmocka_unit_test(pv_kernels_simd_match_scalar),
      cmocka_unit_test(f16_fma_emulation_rounds_once),
      cmocka_unit_test(inline_f16_helpers_match_the_codecs),
      cmocka_unit_test(inline_e4m3_rounding_matches_the_codec),
      cmocka_unit_test(e4m3_codes_round_trip),
      cmocka_unit_test(smooth_k_is_exact_without_quantization),
      cmocka_unit_test(delta_s_reconstructs_the_scores),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
