/* COAT's FP8 AdamW (spec coat-fp8.md section 3, invariants 9.5 and 9.8):
 * with an identity codec it is sparq_adamw_step bit for bit; its exact
 * state bytes and the memory ledger; bit-identity over thread counts; it
 * tracks FP32 AdamW closely with DRE; the counters (NaN, v flush, zero
 * fractions, k histograms) and the FP32 shadow. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/sparq.h"

typedef struct spec {
  const char *name;
  int ndim;
  int64_t shape[3];
} spec;

/* Decay (2-D, 3-D) and no-decay (1-D) parameters; sizes that are not
 * multiples of 128 (short last groups) or of 16 (padding). */
static const spec small[] = {
    {"wte.weight", 2, {37, 29}}, {"ln.weight", 1, {29}}, {"attn.weight", 2, {29, 87}},
    {"attn.bias", 1, {87}},      {"conv.weight", 3, {5, 3, 7}}, {"one", 1, {1}},
};
#define SMALL_COUNT (sizeof small / sizeof small[0])

/* The same plus a parameter big enough for the parallel path. */
static const spec large[] = {
    {"wte.weight", 2, {37, 29}}, {"ln.weight", 1, {29}}, {"big.weight", 2, {300, 301}}, {"attn.bias", 1, {87}},
};
#define LARGE_COUNT (sizeof large / sizeof large[0])

static void list_make(sparq_param_list *pl, const spec *s, size_t n) {
  memset(pl, 0, sizeof *pl);
  for (size_t i = 0; i < n; i++) assert_int_equal(sparq_params_add(pl, s[i].name, s[i].ndim, s[i].shape), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(pl), SPARQ_OK);
  for (size_t i = 0; i < pl->count; i++) {
    sparq_rng rng = sparq_rng_make(5, i);
    sparq_rng_fill_normal(&rng, pl->items[i].data, pl->items[i].numel, 0.0f, 1.0f);
  }
}

/* Gradients of step t with per-element scales spread over 4 decades. */
static void fill_grads(sparq_param_list *pl, int t) {
  for (size_t i = 0; i < pl->count; i++) {
    sparq_rng rng = sparq_rng_make(100 + (uint64_t)t, i);
    sparq_rng scale = sparq_rng_make(7, i);
    const sparq_param *p = &pl->items[i];
    for (size_t j = 0; j < p->numel; j++)
      p->grad[j] = sparq_rng_normal(&rng) * powf(10.0f, -4.0f * sparq_rng_uniform(&scale));
  }
}

static void copy_list(sparq_param_list *dst, const sparq_param_list *src) {
  memcpy(dst->data, src->data, src->numel * sizeof(float));
  memcpy(dst->grad, src->grad, src->numel * sizeof(float));
}

static sparq_adamw_fp8_config fp8_config(bool dre, bool identity, bool shadow) {
  sparq_adamw_fp8_config c = sparq_adamw_fp8_config_default();
  c.dre = dre, c.identity = identity, c.shadow = shadow;
  return c;
}

/* ---------------------------------------------------------------- 9.5 */

static void identity_codec_is_adamw(void **state) {
  (void)state;
  sparq_param_list a, b;
  list_make(&a, small, SMALL_COUNT);
  list_make(&b, small, SMALL_COUNT);
  sparq_adamw_state ref;
  sparq_adamw_fp8_state fp8;
  assert_int_equal(sparq_adamw_init(&ref, &a), SPARQ_OK);
  const sparq_adamw_fp8_config qc = fp8_config(true, true, false);
  assert_int_equal(sparq_adamw_fp8_init(&fp8, &b, &qc), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  float *m = malloc(fp8.numel * sizeof(float)), *v = malloc(fp8.numel * sizeof(float));
  for (int t = 0; t < 20; t++) {
    fill_grads(&a, t);
    copy_list(&b, &a);
    const float lr = 1e-3f * (float)(t + 1) / 20.0f;
    assert_int_equal(sparq_adamw_step(&ref, &a, &cfg, lr), SPARQ_OK);
    assert_int_equal(sparq_adamw_fp8_step(&fp8, &b, &cfg, lr), SPARQ_OK);
    assert_memory_equal(a.data, b.data, a.numel * sizeof(float));
    for (size_t k = 0; k < fp8.ntensors; k++) {
      const sparq_adamw_fp8_tensor *q = &fp8.tensors[k];
      assert_int_equal(sparq_adamw_fp8_dequantize(&fp8, k, m, v), SPARQ_OK);
      assert_memory_equal(m, ref.exp_avg + q->offset, q->numel * sizeof(float));
      assert_memory_equal(v, ref.exp_avg_sq + q->offset, q->numel * sizeof(float));
    }
  }
  assert_int_equal(fp8.step, 20);
  assert_int_equal(fp8.last.v_flush, 0);
  free(m), free(v);
  sparq_adamw_free(&ref);
  sparq_adamw_fp8_free(&fp8);
  sparq_params_free(&a);
  sparq_params_free(&b);
}

/* ---------------------------------------------------------------- 9.8 */

static void state_bytes_and_ledger(void **state) {
  (void)state;
  sparq_param_list pl;
  list_make(&pl, small, SMALL_COUNT);
  /* by hand: N = 1073, 29, 2523, 87, 105, 1 */
  const size_t want = (2 * 1073 + 24 * 9) + (2 * 29 + 24) + (2 * 2523 + 24 * 20) + (2 * 87 + 24) + (2 * 105 + 24) +
                      (2 * 1 + 24);
  assert_int_equal(sparq_adamw_fp8_state_bytes(&pl), want);
  sparq_adamw_fp8_state st;
  const sparq_adamw_fp8_config qc = fp8_config(true, false, false);
  assert_int_equal(sparq_adamw_fp8_init(&st, &pl, &qc), SPARQ_OK);
  assert_int_equal(2 * st.numel + 2 * 3 * sizeof(float) * st.ngroups, want); /* what is allocated */
  sparq_adamw_fp8_free(&st);
  const size_t n = 1073 + 29 + 2523 + 87 + 105 + 1;
  sparq_memory_ledger l = sparq_memory_ledger_make(&pl, SPARQ_OPTIM_ADAMW, 0, 1000);
  assert_int_equal(l.params_bytes, 4 * n);
  assert_int_equal(l.grads_bytes, 4 * n);
  assert_int_equal(l.optimizer_state_bytes, 8 * n);
  assert_int_equal(l.activation_bytes, 1000);
  assert_int_equal(l.total_bytes, 16 * n + 1000);
  l = sparq_memory_ledger_make(&pl, SPARQ_OPTIM_SIGNGD, 0, 0);
  assert_int_equal(l.optimizer_state_bytes, 0);
  assert_int_equal(l.total_bytes, 8 * n);
  l = sparq_memory_ledger_make(&pl, SPARQ_OPTIM_SIGNGD, 0.9f, 0);
  assert_int_equal(l.optimizer_state_bytes, 4 * n);
  l = sparq_memory_ledger_make(&pl, SPARQ_OPTIM_ADAMW_FP8, 0, 7);
  assert_int_equal(l.optimizer_state_bytes, want);
  assert_int_equal(l.total_bytes, 8 * n + want + 7);
  l = sparq_memory_ledger_make(&pl, SPARQ_OPTIM_ADAMW_FP8_NODRE, 0, 0);
  assert_int_equal(l.optimizer_state_bytes, want);
  /* frozen parameters have no FP8 state */
  pl.items[2].frozen = true;
  assert_int_equal(sparq_adamw_fp8_state_bytes(&pl), want - (2 * 2523 + 24 * 20));
  sparq_params_free(&pl);
}

/* -------------------------------------------------------------- threads */

static void run_steps(sparq_param_list *pl, sparq_adamw_fp8_state *st, int steps) {
  sparq_adamw_config cfg = sparq_adamw_config_default();
  for (int t = 0; t < steps; t++) {
    fill_grads(pl, t);
    assert_int_equal(sparq_adamw_fp8_step(st, pl, &cfg, 1e-3f), SPARQ_OK);
  }
}

static void bits_do_not_depend_on_threads(void **state) {
  (void)state;
  const int saved = sparq_threads();
  for (int dre = 0; dre < 2; dre++) {
    sparq_param_list pl[2];
    sparq_adamw_fp8_state st[2];
    const sparq_adamw_fp8_config qc = fp8_config(dre, false, true);
    for (int k = 0; k < 2; k++) {
      sparq_set_threads(k + 1);
      list_make(&pl[k], large, LARGE_COUNT);
      assert_int_equal(sparq_adamw_fp8_init(&st[k], &pl[k], &qc), SPARQ_OK);
      run_steps(&pl[k], &st[k], 5);
    }
    assert_memory_equal(pl[0].data, pl[1].data, pl[0].numel * sizeof(float));
    assert_memory_equal(st[0].m.codes, st[1].m.codes, st[0].numel);
    assert_memory_equal(st[0].v.codes, st[1].v.codes, st[0].numel);
    assert_memory_equal(st[0].m.scale, st[1].m.scale, st[0].ngroups * sizeof(float));
    assert_memory_equal(st[0].v.k, st[1].v.k, st[0].ngroups * sizeof(float));
    assert_memory_equal(st[0].m.c, st[1].m.c, st[0].ngroups * sizeof(float));
    assert_memory_equal(&st[0].last, &st[1].last, sizeof st[0].last);
    for (size_t t = 0; t < st[0].ntensors; t++) {
      sparq_adamw_fp8_stats a, b;
      const sparq_adamw_config cfg = sparq_adamw_config_default();
      assert_int_equal(sparq_adamw_fp8_tensor_stats(&st[0], &cfg, t, &a), SPARQ_OK);
      assert_int_equal(sparq_adamw_fp8_tensor_stats(&st[1], &cfg, t, &b), SPARQ_OK);
      assert_memory_equal(&a, &b, sizeof a);
    }
    for (int k = 0; k < 2; k++) {
      sparq_adamw_fp8_free(&st[k]);
      sparq_params_free(&pl[k]);
    }
  }
  sparq_set_threads(saved);
}

/* ------------------------------------------------------ close to FP32 */

/* The same 60 steps with FP32 AdamW and with FP8 AdamW: how far the FP8
 * weights end from the FP32 ones, relative to how far the FP32 ones moved. */
static double drift(bool dre, sparq_fp8_format fm) {
  sparq_param_list a, b, start;
  list_make(&a, small, SMALL_COUNT);
  list_make(&b, small, SMALL_COUNT);
  list_make(&start, small, SMALL_COUNT);
  sparq_adamw_state ref;
  sparq_adamw_fp8_state fp8;
  assert_int_equal(sparq_adamw_init(&ref, &a), SPARQ_OK);
  sparq_adamw_fp8_config qc = fp8_config(dre, false, false);
  qc.m_format = fm;
  assert_int_equal(sparq_adamw_fp8_init(&fp8, &b, &qc), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  for (int t = 0; t < 60; t++) {
    fill_grads(&a, t);
    /* a gradient that also pulls towards 0, so the direction persists */
    for (size_t j = 0; j < a.numel; j++) a.grad[j] = 0.5f * a.grad[j] + 0.1f * a.data[j];
    for (size_t j = 0; j < b.numel; j++) b.grad[j] = a.grad[j] - 0.1f * a.data[j] + 0.1f * b.data[j];
    assert_int_equal(sparq_adamw_step(&ref, &a, &cfg, 1e-2f), SPARQ_OK);
    assert_int_equal(sparq_adamw_fp8_step(&fp8, &b, &cfg, 1e-2f), SPARQ_OK);
  }
  double diff = 0, moved = 0;
  for (size_t j = 0; j < a.numel; j++) {
    diff += ((double)b.data[j] - a.data[j]) * ((double)b.data[j] - a.data[j]);
    moved += ((double)a.data[j] - start.data[j]) * ((double)a.data[j] - start.data[j]);
  }
  sparq_adamw_free(&ref);
  sparq_adamw_fp8_free(&fp8);
  sparq_params_free(&a);
  sparq_params_free(&b);
  sparq_params_free(&start);
  return sqrt(diff / moved);
}

static void fp8_tracks_fp32(void **state) {
  (void)state;
  const double dre = drift(true, SPARQ_FP8_E4M3), plain = drift(false, SPARQ_FP8_E4M3);
  const double dre_e5 = drift(true, SPARQ_FP8_E5M2);
  print_message("weights after 60 steps vs FP32 AdamW (relative to the distance moved): DRE %.4f, plain %.4f, "
                "DRE with E5M2 m %.4f\n",
                dre, plain, dre_e5);
  assert_true(dre < 0.08);
  assert_true(dre < plain);
}

/* ----------------------------------------------------------- counters */

/* One step from zero moments on gradients spanning 5 decades inside each
 * group: v = 0.05 g^2 spans 10 decades, beyond plain E4M3's 448 / 2^-10. */
static sparq_adamw_fp8_state tiny_v_step(sparq_param_list *pl, bool dre) {
  list_make(pl, small, SMALL_COUNT);
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    for (size_t j = 0; j < p->numel; j++) p->grad[j] = (j % 2 ? -1.0f : 1.0f) * powf(10.0f, -(float)(j % 6));
  }
  sparq_adamw_fp8_state st;
  const sparq_adamw_fp8_config qc = fp8_config(dre, false, false);
  assert_int_equal(sparq_adamw_fp8_init(&st, pl, &qc), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  assert_int_equal(sparq_adamw_fp8_step(&st, pl, &cfg, 1e-3f), SPARQ_OK);
  return st;
}

static void v_flush_counter(void **state) {
  (void)state;
  sparq_param_list pl;
  const sparq_adamw_config cfg = sparq_adamw_config_default();
  sparq_adamw_fp8_state plain = tiny_v_step(&pl, false);
  print_message("plain E4M3: v_flush %llu\n", (unsigned long long)plain.last.v_flush);
  assert_true(plain.last.v_flush > 0);
  sparq_adamw_fp8_stats x;
  assert_int_equal(sparq_adamw_fp8_tensor_stats(&plain, &cfg, 0, &x), SPARQ_OK);
  assert_true(x.zero_frac_v > 0.1 && x.zero_frac_v < 1);
  assert_true(isnan(x.relmse_m)); /* no shadow */
  uint64_t zeroed = 0;
  for (size_t t = 0; t < plain.ntensors; t++) zeroed += plain.tensors[t].v_zeroed;
  assert_int_equal(zeroed, plain.last.v_flush);
  sparq_adamw_fp8_free(&plain);
  sparq_params_free(&pl);

  sparq_adamw_fp8_state dre = tiny_v_step(&pl, true);
  assert_int_equal(dre.last.v_flush, 0);
  assert_int_equal(dre.last.nan_params + dre.last.nan_m + dre.last.nan_v, 0);
  for (size_t t = 0; t < dre.ntensors; t++) {
    assert_int_equal(sparq_adamw_fp8_tensor_stats(&dre, &cfg, t, &x), SPARQ_OK);
    assert_true(x.zero_frac_m == 0 && x.zero_frac_v == 0);
    uint32_t groups_m = 0, groups_v = 0;
    for (int b = 0; b < SPARQ_FP8_K_BINS; b++) groups_m += x.k_hist_m[b], groups_v += x.k_hist_v[b];
    assert_int_equal(groups_m, dre.tensors[t].ngroups);
    assert_int_equal(groups_v, dre.tensors[t].ngroups);
    /* m spans 5 decades (k = 1), v 10 (k = 1/2): the one-element tensor is constant (k = 1) */
    if (dre.tensors[t].numel > 6) {
      assert_true(x.frac_k_lt1_v == 1.0);
      assert_true(x.k_hist_v[2] == dre.tensors[t].ngroups); /* k = 0.5 in [0.5, 0.75) */
    }
  }
  sparq_adamw_fp8_free(&dre);

  /* a NaN gradient shows in the counters (the step itself still runs) */
  sparq_adamw_fp8_state st;
  const sparq_adamw_fp8_config qc = fp8_config(true, false, false);
  assert_int_equal(sparq_adamw_fp8_init(&st, &pl, &qc), SPARQ_OK);
  pl.items[2].grad[5] = NAN;
  assert_int_equal(sparq_adamw_fp8_step(&st, &pl, &cfg, 1e-3f), SPARQ_OK);
  assert_int_equal(st.last.nan_m, 1);
  assert_int_equal(st.last.nan_v, 1);
  assert_int_equal(st.last.nan_params, 1);
  sparq_adamw_fp8_free(&st);
  sparq_params_free(&pl);
}

/* --------------------------------------------------------------- shadow */

static void shadow_errors(void **state) {
  (void)state;
  const sparq_adamw_config cfg = sparq_adamw_config_default();
  for (int mode = 0; mode < 2; mode++) { /* identity, DRE */
    sparq_param_list pl;
    list_make(&pl, small, SMALL_COUNT);
    sparq_adamw_fp8_state st;
    const sparq_adamw_fp8_config qc = fp8_config(true, mode == 0, true);
    assert_int_equal(sparq_adamw_fp8_init(&st, &pl, &qc), SPARQ_OK);
    run_steps(&pl, &st, 10);
    for (size_t t = 0; t < st.ntensors; t++) {
      sparq_adamw_fp8_stats x;
      assert_int_equal(sparq_adamw_fp8_tensor_stats(&st, &cfg, t, &x), SPARQ_OK);
      if (mode == 0) {
        assert_true(x.relmse_m == 0 && x.relmse_v == 0 && x.relmse_update == 0);
      } else {
        /* ten steps of requantisation: small but not zero (the quantised
         * moments drift from the FP32 ones) */
        const bool single = st.tensors[t].numel == 1; /* a constant group comes back exactly */
        if (x.relmse_m > 1e-2 || x.relmse_v > 1e-2 || x.relmse_update > 1e-2 || !(single || x.relmse_m > 0))
          fail_msg("tensor %zu: relmse m %g v %g update %g", t, x.relmse_m, x.relmse_v, x.relmse_update);
      }
    }
    sparq_adamw_fp8_free(&st);
    sparq_params_free(&pl);
  }
}

static void bad_arguments(void **state) {
  (void)state;
  sparq_param_list a, b;
  list_make(&a, small, SMALL_COUNT);
  list_make(&b, large, LARGE_COUNT);
  sparq_adamw_fp8_state st;
  sparq_adamw_fp8_config qc = fp8_config(true, false, false);
  assert_int_equal(sparq_adamw_fp8_init(&st, &a, &qc), SPARQ_OK);
  sparq_adamw_config cfg = sparq_adamw_config_default();
  assert_int_equal(sparq_adamw_fp8_step(&st, &b, &cfg, 1e-3f), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_adamw_fp8_step"));
  assert_int_equal(sparq_adamw_fp8_step(&st, &a, &cfg, -1.0f), SPARQ_ERR_ARG);
  cfg.beta1 = 1.0f;
  assert_int_equal(sparq_adamw_fp8_step(&st, &a, &cfg, 1e-3f), SPARQ_ERR_ARG);
  assert_int_equal(sparq_adamw_fp8_step(NULL, &a, &cfg, 1e-3f), SPARQ_ERR_ARG);
  sparq_adamw_fp8_free(&st);
  sparq_adamw_fp8_free(&st); /* twice is fine */
  qc.m_format = (sparq_fp8_format)7;
  assert_int_equal(sparq_adamw_fp8_init(&st, &a, &qc), SPARQ_ERR_ARG);
  sparq_fp8_format f;
  assert_true(sparq_fp8_format_parse("e5m2", &f) && f == SPARQ_FP8_E5M2);
  assert_false(sparq_fp8_format_parse("e3m4", &f));
  assert_int_equal(sparq_fp8_dtype(SPARQ_FP8_E4M3), SPARQ_F8_E4M3);
  sparq_params_free(&a);
  sparq_params_free(&b);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(identity_codec_is_adamw), cmocka_unit_test(state_bytes_and_ledger),
      cmocka_unit_test(bits_do_not_depend_on_threads), cmocka_unit_test(fp8_tracks_fp32),
      cmocka_unit_test(v_flush_counter), cmocka_unit_test(shadow_errors),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
