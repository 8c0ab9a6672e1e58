/* sparq_attention_backward: the ref_f64 backward against finite differences
 * of a double-precision forward, and flash_f32 against ref_f64 (max error
 * <= 1e-4 of the largest gradient) with causal masks, GQA, Nq != Nk, padded
 * head dims, NHD (copied, and read in place), keys cut into chunks, the
 * portable twin and 1 vs 2 threads. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

#include "attn_test_fp32.h"

/* Attention in double straight from the definition (HND, one head group at
 * a time is enough here): the function finite differences differentiate. */
static void forward_f64(const sparq_attn_shape *s, bool causal, int64_t offset, double scale, const double *q,
                        const double *k, const double *v, double *o) {
  const int64_t d = s->head_dim, group = s->q_heads / s->kv_heads;
  double *p = malloc((size_t)s->kv_len * sizeof(double));
  for (int64_t b = 0; b < s->batch; b++)
    for (int64_t h = 0; h < s->q_heads; h++)
      for (int64_t i = 0; i < s->q_len; i++) {
        const double *qi = q + ((b * s->q_heads + h) * s->q_len + i) * d;
        const int64_t base = (b * s->kv_heads + h / group) * s->kv_len;
        int64_t vis = causal ? i + offset + 1 : s->kv_len;
        vis = vis < 0 ? 0 : vis > s->kv_len ? s->kv_len : vis;
        double m = -INFINITY, l = 0;
        for (int64_t j = 0; j < vis; j++) {
          double acc = 0;
          for (int64_t c = 0; c < d; c++) acc += qi[c] * k[(base + j) * d + c];
          p[j] = scale * acc;
          m = p[j] > m ? p[j] : m;
        }
        for (int64_t j = 0; j < vis; j++) l += (p[j] = exp(p[j] - m));
        double *oi = o + ((b * s->q_heads + h) * s->q_len + i) * d;
        for (int64_t c = 0; c < d; c++) {
          double acc = 0;
          for (int64_t j = 0; j < vis; j++) acc += p[j] / l * v[(base + j) * d + c];
          oi[c] = acc;
        }
      }
  free(p);
}

typedef struct grads {
  float *dq, *dk, *dv, *dout;
} grads;

static grads grads_make(const sparq_attn_shape *s) {
  grads g;
  g.dq = sparq_alloc(attn_q_count(s) * 4, "dq");
  g.dk = sparq_alloc(attn_k_count(s) * 4, "dk");
  g.dv = sparq_alloc(attn_k_count(s) * 4, "dv");
  g.dout = sparq_alloc(attn_q_count(s) * 4, "dout");
  return g;
}
static void grads_free(grads *g) {
  sparq_free(g->dq), sparq_free(g->dk), sparq_free(g->dv), sparq_free(g->dout);
}

/* Forward (for O and the LSE) then backward with one variant. */
static void forward_backward(attn_bufs *b, grads *g, sparq_attn_variant variant, bool causal, int64_t offset,
                             sparq_attn_layout layout) {
  sparq_attn_options o = sparq_attn_options_default();
  o.causal = causal, o.layout = layout, o.lse = b->lse;
  o.has_causal_offset = causal && b->shape.q_len != b->shape.kv_len, o.causal_offset = offset;
  o.variant = SPARQ_ATTN_FLASH_F32;
  assert_int_equal(sparq_attention(b->q, b->k, b->v, b->o, &b->shape, &o), SPARQ_OK);
  o.variant = variant, o.lse = NULL;
  assert_int_equal(sparq_attention_backward(b->q, b->k, b->v, b->o, b->lse, g->dout, g->dq, g->dk, g->dv, &b->shape, &o),
                   SPARQ_OK);
}

/* d(sum O . G)/dX by central differences in double against ref_f64. */
static void ref_backward_matches_finite_differences(void **state) {
  (void)state;
  const struct {
    sparq_attn_shape s;
    bool causal;
    int64_t offset;
  } cases[] = {{{1, 2, 1, 5, 5, 4}, false, 0}, {{1, 2, 2, 5, 5, 3}, true, 0}, {{2, 2, 1, 3, 6, 4}, true, 2},
               {{1, 1, 1, 6, 4, 5}, true, -2}};
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const sparq_attn_shape *s = &cases[ci].s;
    const size_t nq = attn_q_count(s), nk = attn_k_count(s);
    attn_bufs b = attn_bufs_make(s, 2, SPARQ_ATTN_HND, 42 + ci);
    grads g = grads_make(s);
    sparq_rng rng = sparq_rng_make(3, ci);
    sparq_rng_fill_normal(&rng, g.dout, nq, 0, 1);
    for (size_t i = 0; i < nq; i++) b.q[i] *= 0.5f; /* moderate logits: differences stay well conditioned */
    forward_backward(&b, &g, SPARQ_ATTN_REF_F64, cases[ci].causal, cases[ci].offset, SPARQ_ATTN_HND);
    double *x = malloc((nq + 2 * nk) * sizeof(double)), *o = malloc(nq * sizeof(double));
    for (size_t i = 0; i < nq; i++) x[i] = b.q[i];
    for (size_t i = 0; i < nk; i++) x[nq + i] = b.k[i], x[nq + nk + i] = b.v[i];
    const double scale = 1.0 / sqrt((double)s->head_dim), h = 1e-6;
    for (size_t i = 0; i < nq + 2 * nk; i++) {
      double keep = x[i], loss[2];
      for (int side = 0; side < 2; side++) {
        x[i] = keep + (side ? h : -h);
        forward_f64(s, cases[ci].causal, cases[ci].offset, scale, x, x + nq, x + nq + nk, o);
        loss[side] = 0;
        for (size_t j = 0; j < nq; j++) loss[side] += o[j] * g.dout[j];
      }
      x[i] = keep;
      const double fd = (loss[1] - loss[0]) / (2 * h);
      const float an = i < nq ? g.dq[i] : i < nq + nk ? g.dk[i - nq] : g.dv[i - nq - nk];
      if (fabs(fd - an) > 1e-5 * (1 + fabs(fd)))
        fail_msg("case %zu element %zu: finite difference %.9g, ref_f64 %.9g", ci, i, fd, (double)an);
    }
    free(x), free(o);
    grads_free(&g);
    attn_bufs_free(&b);
  }
}

static void expect_close(const float *test, const float *ref, size_t n, double tol, const char *what) {
  double e = attn_normwise_err(test, ref, n);
  if (getenv("ATTN_TEST_VERBOSE")) printf("%s: %.3g\n", what, e);
  if (!(e <= tol)) fail_msg("%s: max error %.3g of the largest gradient (limit %.1g)", what, e, tol);
}

/* flash_f32 against ref_f64 on one problem; also the portable twin and one thread. */
static void flash_case(const sparq_attn_shape *s, int case_id, bool causal, int64_t offset,
                       sparq_attn_layout layout, const char *name) {
  const size_t nq = attn_q_count(s), nk = attn_k_count(s);
  attn_bufs b = attn_bufs_make(s, case_id, layout, 77);
  grads ref = grads_make(s), fl = grads_make(s), tw = grads_make(s);
  sparq_rng rng = sparq_rng_make(4, 0);
  sparq_rng_fill_normal(&rng, ref.dout, nq, 0, 1);
  memcpy(fl.dout, ref.dout, nq * 4), memcpy(tw.dout, ref.dout, nq * 4);
  forward_backward(&b, &ref, SPARQ_ATTN_REF_F64, causal, offset, layout);
  forward_backward(&b, &fl, SPARQ_ATTN_FLASH_F32, causal, offset, layout);
  char what[160];
  const char *names[] = {"dQ", "dK", "dV"};
  const float *f[] = {fl.dq, fl.dk, fl.dv}, *r[] = {ref.dq, ref.dk, ref.dv};
  const size_t n[] = {nq, nk, nk};
  for (int i = 0; i < 3; i++) {
    snprintf(what, sizeof what, "%s %s", name, names[i]);
    expect_close(f[i], r[i], n[i], 1e-4, what);
  }
  /* the portable twin, at one thread: close to the SIMD result, and the
   * thread count changes no bits */
  const sparq_isa top = sparq_isa_active();
  const int threads = sparq_threads();
  sparq_set_isa_cap(SPARQ_ISA_SCALAR);
  forward_backward(&b, &tw, SPARQ_ATTN_FLASH_F32, causal, offset, layout);
  const float *t[] = {tw.dq, tw.dk, tw.dv};
  for (int i = 0; i < 3; i++) {
    snprintf(what, sizeof what, "%s %s portable", name, names[i]);
    expect_close(t[i], r[i], n[i], 1e-4, what);
  }
  /* the AVX2 build of the twin computes the same expressions: same bits */
  sparq_set_isa_cap(SPARQ_ISA_AVX2);
  if (sparq_isa_active() == SPARQ_ISA_AVX2) {
    grads x = grads_make(s);
    memcpy(x.dout, ref.dout, nq * 4);
    forward_backward(&b, &x, SPARQ_ATTN_FLASH_F32, causal, offset, layout);
    assert_true(attn_bits_equal(x.dq, tw.dq, nq) && attn_bits_equal(x.dk, tw.dk, nk) &&
                attn_bits_equal(x.dv, tw.dv, nk));
    grads_free(&x);
  }
  sparq_set_isa_cap(top);
  sparq_set_threads(threads == 1 ? 2 : 1);
  forward_backward(&b, &tw, SPARQ_ATTN_FLASH_F32, causal, offset, layout);
  sparq_set_threads(threads);
  for (int i = 0; i < 3; i++) assert_true(attn_bits_equal(t[i], f[i], n[i]));
  grads_free(&ref), grads_free(&fl), grads_free(&tw);
  attn_bufs_free(&b);
}

static void flash_backward_matches_ref(void **state) {
  (void)state;
  const int64_t n = ATTN_TEST_SLOW ? 70 : 200;
  sparq_attn_shape s = attn_shape(1, 2, 2, n, n, 64);
  flash_case(&s, 1, false, 0, SPARQ_ATTN_HND, "plain D1");
  flash_case(&s, 4, true, 0, SPARQ_ATTN_HND, "causal D4");
  sparq_attn_shape gqa = attn_shape(2, 4, 2, 130, 130, 48);
  flash_case(&gqa, 3, true, 0, SPARQ_ATTN_NHD, "GQA causal NHD d48");
  sparq_attn_shape rect = attn_shape(1, 3, 1, 70, 150, 96);
  flash_case(&rect, 2, true, 80, SPARQ_ATTN_HND, "Nq<Nk bottom-right");
  flash_case(&rect, 2, true, -10, SPARQ_ATTN_HND, "Nq<Nk masked rows");
  sparq_attn_shape tall = attn_shape(1, 2, 2, 150, 40, 160);
  flash_case(&tall, 5, false, 0, SPARQ_ATTN_HND, "Nq>Nk d160");
  sparq_attn_shape one = attn_shape(1, 1, 1, 1, 1, 7);
  flash_case(&one, 0, false, 0, SPARQ_ATTN_HND, "N=1 d7");
}

/* Head dims that need no padding: flash_f32 reads and writes the caller's
 * NHD tensors in place, at their strides. */
static void flash_backward_strided_nhd(void **state) {
  (void)state;
  sparq_attn_shape gpt = attn_shape(2, 6, 6, ATTN_TEST_SLOW ? 96 : 256, ATTN_TEST_SLOW ? 96 : 256, 64);
  flash_case(&gpt, 1, true, 0, SPARQ_ATTN_NHD, "NHD causal d64");
  sparq_attn_shape gqa = attn_shape(1, 4, 2, 100, 130, 32);
  flash_case(&gqa, 3, true, -20, SPARQ_ATTN_NHD, "NHD GQA masked rows d32");
  flash_case(&gqa, 2, false, 0, SPARQ_ATTN_NHD, "NHD GQA d32");
  sparq_attn_shape wide = attn_shape(1, 2, 1, 70, 70, 128);
  flash_case(&wide, 4, true, 0, SPARQ_ATTN_NHD, "NHD GQA causal d128");
}

/* Few (batch, kv head) pairs and many key blocks: the keys of every kv head
 * are cut into chunks whose dQ parts add up in a last pass. */
static void flash_backward_key_chunks(void **state) {
  (void)state;
  sparq_attn_shape causal = attn_shape(1, 2, 1, 520, 520, 32);
  flash_case(&causal, 1, true, 0, SPARQ_ATTN_HND, "chunks causal GQA");
  sparq_attn_shape rect = attn_shape(1, 2, 2, 300, 600, 32);
  flash_case(&rect, 2, true, 300, SPARQ_ATTN_NHD, "chunks Nq<Nk bottom-right NHD");
  flash_case(&rect, 2, true, -40, SPARQ_ATTN_HND, "chunks Nq<Nk masked rows");
  sparq_attn_shape full = attn_shape(1, 1, 1, 90, 1030, 64);
  flash_case(&full, 5, false, 0, SPARQ_ATTN_HND, "chunks non-causal Nq<Nk");
}

/* A row with no visible key has O = 0 and LSE = -inf: its gradients are 0,
 * never NaN from the -inf. */
static void fully_masked_rows_have_zero_gradients(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(1, 1, 1, 8, 8, 32);
  for (int v = 0; v < 2; v++) {
    attn_bufs b = attn_bufs_make(&s, 1, SPARQ_ATTN_HND, 1);
    grads g = grads_make(&s);
    for (size_t i = 0; i < attn_q_count(&s); i++) g.dout[i] = 1.0f;
    sparq_attn_options o = sparq_attn_options_default();
    o.causal = true, o.has_causal_offset = true, o.causal_offset = -3, o.lse = b.lse;
    assert_int_equal(sparq_attention(b.q, b.k, b.v, b.o, &s, &o), SPARQ_OK);
    o.variant = v ? SPARQ_ATTN_FLASH_F32 : SPARQ_ATTN_REF_F64;
    assert_int_equal(sparq_attention_backward(b.q, b.k, b.v, b.o, b.lse, g.dout, g.dq, g.dk, g.dv, &s, &o), SPARQ_OK);
    for (size_t i = 0; i < attn_q_count(&s); i++) {
      assert_true(isfinite(g.dq[i]) && isfinite(g.dk[i]) && isfinite(g.dv[i]));
      if (i < 3 * 32) assert_true(g.dq[i] == 0.0f); /* rows 0..2 see no key */
    }
    /* keys 5..7 are seen by no row: no gradient reaches them */
    for (size_t i = 5 * 32; i < 8 * 32; i++) assert_true(g.dk[i] == 0.0f && g.dv[i] == 0.0f);
    grads_free(&g);
    attn_bufs_free(&b);
  }
}

static void bad_backward_arguments(void **state) {
  (void)state;
  sparq_attn_shape s = attn_shape(1, 1, 1, 4, 4, 8);
  attn_bufs b = attn_bufs_make(&s, 0, SPARQ_ATTN_HND, 1);
  grads g = grads_make(&s);
  sparq_attn_options o = sparq_attn_options_default();
  o.variant = SPARQ_ATTN_SAGE_CPU;
  assert_int_equal(sparq_attention_backward(b.q, b.k, b.v, b.o, b.lse, g.dout, g.dq, g.dk, g.dv, &s, &o), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "no backward"));
  o = sparq_attn_options_default();
  o.dtype = SPARQ_F16;
  assert_int_equal(sparq_attention_backward(b.q, b.k, b.v, b.o, b.lse, g.dout, g.dq, g.dk, g.dv, &s, &o), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "FP32"));
  o = sparq_attn_options_default();
  assert_int_equal(sparq_attention_backward(b.q, b.k, b.v, b.o, NULL, g.dout, g.dq, g.dk, g.dv, &s, &o), SPARQ_ERR_ARG);
  assert_int_equal(sparq_attention_backward(b.q, b.k, b.v, b.o, b.lse, g.dout, b.q, g.dk, g.dv, &s, &o), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "dq overlaps"));
  assert_int_equal(sparq_attention_backward(b.q, b.k, b.v, b.o, b.lse, g.dout, g.dq, g.dk, g.dk, &s, &o), SPARQ_ERR_ARG);
  grads_free(&g);
  attn_bufs_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ref_backward_matches_finite_differences),
      cmocka_unit_test(flash_backward_matches_ref),
      cmocka_unit_test(flash_backward_strided_nhd),
      cmocka_unit_test(flash_backward_key_chunks),
      cmocka_unit_test(fully_masked_rows_have_zero_gradients),
      cmocka_unit_test(bad_backward_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
