/* Noise schedules and training batches of diffusion.h: the DDPM table
 * against its closed form, the VP timestep <-> sigma map, EDM's
 * preconditioning, the Karras grid, and the batch identities that let a head
 * output be turned back into x0 and eps for every formulation. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sparq/diffusion.h"

static void assert_close(double got, double want, double tol) {
  if (!(fabs(got - want) <= tol)) fail_msg("got %.12g want %.12g (tol %.3g)", got, want, tol);
}

static void vp_table_matches_closed_form(void **state) {
  (void)state;
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  assert_int_equal(d.num_steps, 1000);
  assert_close(d.alphas_cumprod[0], 1.0 - 1e-4, 1e-15);
  /* abar_t = exp(sum_s ln(1 - beta_s)), beta_s = 1e-4 + s (0.02 - 1e-4) / 999. */
  for (int t = 0; t < 1000; t += 111) {
    double l = 0.0;
    for (int s = 0; s <= t; s++) l += log1p(-(1e-4 + s * (0.02 - 1e-4) / 999.0));
    assert_close(d.alphas_cumprod[t] / exp(l), 1.0, 1e-12);
  }
  double l = 0.0;
  for (int s = 0; s < 1000; s++) l += log1p(-(1e-4 + s * (0.02 - 1e-4) / 999.0));
  assert_close(d.alphas_cumprod[999] / exp(l), 1.0, 1e-12);
  assert_close(d.alphas_cumprod[999], 4.035e-5, 0.01e-5); /* the well-known DDPM value */
  for (int t = 1; t < 1000; t++) assert_true(d.alphas_cumprod[t] < d.alphas_cumprod[t - 1]);
  sparq_diffusion_free(&d);
  sparq_diffusion_free(&d); /* twice is safe */
}

static void vp_sigma_and_timestep_are_inverse(void **state) {
  (void)state;
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_V), SPARQ_OK);
  for (int t = 0; t < 1000; t += 37) {
    const double ab = d.alphas_cumprod[t];
    const double s = sparq_diffusion_vp_sigma(&d, t);
    assert_close(s / sqrt((1.0 - ab) / ab), 1.0, 1e-12);
    assert_close(sparq_diffusion_vp_timestep(&d, s), t, 1e-9);
    double a, sv;
    sparq_diffusion_alpha_sigma(&d, t, &a, &sv);
    assert_close(a, sqrt(ab), 1e-12);
    assert_close(sv, sqrt(1.0 - ab), 1e-12);
  }
  const double ts[] = {0.0, 0.25, 17.5, 500.125, 998.9, 999.0};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
    const double s = sparq_diffusion_vp_sigma(&d, ts[i]);
    assert_close(sparq_diffusion_vp_timestep(&d, s), ts[i], 1e-9);
    assert_close(sparq_diffusion_time_input(&d, s), ts[i], 1e-9);
  }
  /* Clamping outside the table. */
  double lo, hi;
  sparq_diffusion_sigma_range(&d, &lo, &hi);
  assert_close(lo, sparq_diffusion_vp_sigma(&d, 0), 1e-15);
  assert_close(hi, sparq_diffusion_vp_sigma(&d, 999), 1e-12);
  assert_close(sparq_diffusion_vp_timestep(&d, lo * 0.5), 0.0, 0.0);
  assert_close(sparq_diffusion_vp_timestep(&d, hi * 2.0), 999.0, 0.0);
  assert_close(sparq_diffusion_vp_sigma(&d, -3.0), lo, 0.0);
  assert_close(sparq_diffusion_vp_sigma(&d, 5000.0), hi, 1e-12);
  assert_true(lo > 0.0099 && lo < 0.0101);
  assert_true(hi > 157.0 && hi < 158.0);
  sparq_diffusion_free(&d);
}

static void edm_preconditioning(void **state) {
  (void)state;
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_EDM, SPARQ_PRED_EPS), SPARQ_OK);
  assert_null(d.alphas_cumprod);
  assert_close(d.sigma_data, 0.5, 0);
  assert_close(d.sigma_min, 0.002, 0);
  assert_close(d.sigma_max, 80, 0);
  assert_close(d.rho, 7, 0);
  assert_close(d.p_mean, -1.2, 0);
  assert_close(d.p_std, 1.2, 0);
  /* At sigma = sigma_data: c_skip 1/2, c_out sd / sqrt 2, c_in 1 / (sd sqrt 2). */
  sparq_edm_scalings c = sparq_edm_precond(&d, 0.5);
  assert_close(c.c_skip, 0.5, 1e-15);
  assert_close(c.c_out, 0.5 / sqrt(2.0), 1e-15);
  assert_close(c.c_in, 2.0 / sqrt(2.0), 1e-15);
  assert_close(c.c_noise, 250.0 * log(0.5), 1e-12);
  const double sig[] = {0.002, 0.1, 1.0, 80.0};
  for (size_t i = 0; i < 4; i++) {
    const double s = sig[i];
    c = sparq_edm_precond(&d, s);
    assert_close(c.c_skip, 0.25 / (s * s + 0.25), 1e-15);
    assert_close(c.c_out, s * 0.5 / sqrt(s * s + 0.25), 1e-15);
    assert_close(c.c_in, 1.0 / sqrt(s * s + 0.25), 1e-13);
    /* Unit-variance network input and target for data of std sigma_data. */
    assert_close(c.c_in * c.c_in * (0.25 + s * s), 1.0, 1e-12);
    assert_close(sparq_diffusion_time_input(&d, s), 250.0 * log(s), 1e-12);
    double a, sv;
    sparq_diffusion_alpha_sigma(&d, 250.0 * log(s), &a, &sv);
    assert_close(a, 1.0, 0);
    assert_close(sv, s, 1e-13 * s);
  }
  double lo, hi;
  sparq_diffusion_sigma_range(&d, &lo, &hi);
  assert_close(lo, 0.002, 0);
  assert_close(hi, 80, 0);
  sparq_diffusion_free(&d);
}

static void karras_grid(void **state) {
  (void)state;
  double s[41];
  assert_int_equal(sparq_karras_sigmas(0.002, 80.0, 7.0, 40, s), SPARQ_OK);
  assert_close(s[0], 80.0, 0);
  assert_close(s[39], 0.002, 0);
  assert_close(s[40], 0.0, 0);
  for (int i = 1; i < 40; i++) assert_true(s[i] < s[i - 1]);
  /* The middle of a 3-point grid: ((80^(1/7) + 0.002^(1/7)) / 2)^7. */
  double m[4];
  assert_int_equal(sparq_karras_sigmas(0.002, 80.0, 7.0, 3, m), SPARQ_OK);
  assert_close(m[1], pow(0.5 * (pow(80.0, 1.0 / 7) + pow(0.002, 1.0 / 7)), 7.0), 1e-12);
  double one[2];
  assert_int_equal(sparq_karras_sigmas(0.002, 80.0, 7.0, 1, one), SPARQ_OK);
  assert_close(one[0], 80.0, 0);
  assert_close(one[1], 0.0, 0);
  assert_int_equal(sparq_karras_sigmas(0.002, 80.0, 7.0, 0, s), SPARQ_ERR_ARG);
  assert_int_equal(sparq_karras_sigmas(0.0, 80.0, 7.0, 4, s), SPARQ_ERR_ARG);
  assert_int_equal(sparq_karras_sigmas(1.0, 0.5, 7.0, 4, s), SPARQ_ERR_ARG);
  assert_int_equal(sparq_karras_sigmas(0.002, 80.0, 0.0, 4, s), SPARQ_ERR_ARG);
  assert_int_equal(sparq_karras_sigmas(0.002, 80.0, 7.0, 4, NULL), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_karras_sigmas"));
}

static void names_round_trip(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) {
    sparq_diff_kind got;
    assert_true(sparq_diff_kind_from_name(sparq_diff_kind_name((sparq_diff_kind)k), &got));
    assert_int_equal(got, k);
  }
  for (int p = 0; p < 3; p++) {
    sparq_diff_pred got;
    assert_true(sparq_diff_pred_from_name(sparq_diff_pred_name((sparq_diff_pred)p), &got));
    assert_int_equal(got, p);
  }
  for (int s = 0; s < 4; s++) {
    sparq_sampler_kind got;
    assert_true(sparq_sampler_from_name(sparq_sampler_name((sparq_sampler_kind)s), &got));
    assert_int_equal(got, s);
  }
  assert_string_equal(sparq_diff_kind_name(SPARQ_DIFF_EDM), "edm");
  assert_string_equal(sparq_diff_pred_name(SPARQ_PRED_V), "v");
  assert_string_equal(sparq_sampler_name(SPARQ_SAMPLER_DPMPP2M), "dpmpp2m");
  sparq_diff_kind k;
  assert_false(sparq_diff_kind_from_name("ve", &k));
  assert_false(sparq_diff_kind_from_name(NULL, &k));
  sparq_diff_pred p;
  assert_false(sparq_diff_pred_from_name("score", &p));
  sparq_sampler_kind sk;
  assert_false(sparq_sampler_from_name("plms", &sk));
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, (sparq_diff_kind)7, SPARQ_PRED_EPS), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_diffusion_init"));
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, (sparq_diff_pred)9), SPARQ_ERR_ARG);
  assert_int_equal(sparq_diffusion_init(NULL, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_ERR_ARG);
  sparq_diffusion_free(&d);
  sparq_diffusion_free(NULL);
}

/* Rows of ramp data so every element differs. */
#define BN 257
#define BD 5
static void make_x0(float *x0) {
  for (int i = 0; i < BN * BD; i++) x0[i] = (float)sin(0.37 * i) * 0.9f;
}

static void vp_batch_identities(void **state) {
  (void)state;
  static float x0[BN * BD], nx[BN * BD], tg[BN * BD], eps[BN * BD];
  float nt[BN], w[BN], t_draw[BN];
  make_x0(x0);
  for (int p = 0; p < 3; p++) {
    sparq_diffusion d;
    assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, (sparq_diff_pred)p), SPARQ_OK);
    sparq_rng rng = sparq_rng_make(42, 3);
    assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, BD, &rng, nx, nt, tg, w), SPARQ_OK);
    /* The documented draw order: n timesteps, then n * dim normals. */
    sparq_rng again = sparq_rng_make(42, 3);
    for (int i = 0; i < BN; i++) t_draw[i] = (float)sparq_rng_below(&again, 1000);
    sparq_rng_fill_normal(&again, eps, BN * BD, 0.0f, 1.0f);
    assert_int_equal(again.position, rng.position);
    int lo = 1000, hi = -1;
    for (int i = 0; i < BN; i++) {
      assert_close(nt[i], t_draw[i], 0);
      assert_close(w[i], 1.0, 0);
      const int t = (int)nt[i];
      lo = t < lo ? t : lo;
      hi = t > hi ? t : hi;
      const double a = sqrt(d.alphas_cumprod[t]), s = sqrt(1.0 - d.alphas_cumprod[t]);
      for (int j = 0; j < BD; j++) {
        const int k = i * BD + j;
        const double x = nx[k], o = tg[k];
        assert_close(x, a * x0[k] + s * eps[k], 1e-6);
        /* Reconstruct x0 and eps from (net_x, target) per head. */
        double rx0, reps;
        if (p == SPARQ_PRED_EPS) {
          reps = o;
          rx0 = (x - s * o) / a;
        } else if (p == SPARQ_PRED_X0) {
          rx0 = o;
          reps = (x - a * o) / s;
        } else {
          rx0 = a * x - s * o;
          reps = s * x + a * o;
        }
        /* Float rounding of net_x and target, amplified by the division
         * each head's inverse needs (x0 head: 1/s for eps; eps head: 1/a). */
        const double ulp = 5e-7 * (1.0 + fabs(x) + fabs(o));
        assert_close(reps, eps[k], p == SPARQ_PRED_X0 ? ulp / s : ulp);
        assert_close(rx0, x0[k], p == SPARQ_PRED_EPS ? ulp / a : ulp);
      }
    }
    assert_true(lo < 50 && hi > 950);
    sparq_diffusion_free(&d);
  }
}

static void edm_batch_identities(void **state) {
  (void)state;
  static float x0[BN * BD], nx[BN * BD], tg[BN * BD], eps[BN * BD];
  float nt[BN], w[BN];
  make_x0(x0);
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_EDM, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_rng rng = sparq_rng_make(9, 1);
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, BD, &rng, nx, nt, tg, w), SPARQ_OK);
  sparq_rng again = sparq_rng_make(9, 1);
  double mean_ls = 0.0;
  for (int i = 0; i < BN; i++) {
    const double ls = d.p_mean + d.p_std * (double)sparq_rng_normal(&again);
    assert_close(nt[i], 250.0 * (double)(float)ls, 2e-4 * fabs(nt[i]) + 1e-4);
    mean_ls += (double)nt[i] / 250.0;
  }
  sparq_rng_fill_normal(&again, eps, BN * BD, 0.0f, 1.0f);
  mean_ls /= BN;
  assert_true(fabs(mean_ls - d.p_mean) < 4.0 * d.p_std / sqrt((double)BN));
  for (int i = 0; i < BN; i++) {
    assert_close(w[i], 1.0, 0);
    const double sigma = exp((double)nt[i] / 250.0);
    const sparq_edm_scalings c = sparq_edm_precond(&d, sigma);
    for (int j = 0; j < BD; j++) {
      const int k = i * BD + j;
      const double x = (double)nx[k] / c.c_in; /* the noisy sample x0 + sigma eps */
      assert_close(x, x0[k] + sigma * eps[k], 1e-5 * (1.0 + sigma));
      /* The preconditioned head's target gives x0 back through D. */
      assert_close(c.c_skip * x + c.c_out * tg[k], x0[k], 1e-5);
    }
  }
  sparq_diffusion_free(&d);
}

static void batch_is_deterministic_and_checks_arguments(void **state) {
  (void)state;
  static float x0[BN * BD], a[BN * BD], b[BN * BD], ta[BN * BD], tb[BN * BD];
  float na[BN], nb[BN], w[BN];
  make_x0(x0);
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_V), SPARQ_OK);
  sparq_rng r1 = sparq_rng_make(5, 0), r2 = sparq_rng_make(5, 0);
  sparq_set_threads(1);
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, BD, &r1, a, na, ta, w), SPARQ_OK);
  sparq_set_threads(2);
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, BD, &r2, b, nb, tb, w), SPARQ_OK);
  assert_memory_equal(a, b, sizeof a);
  assert_memory_equal(ta, tb, sizeof ta);
  assert_memory_equal(na, nb, sizeof na);
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, 0, BD, &r1, a, na, ta, w), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_diffusion_training_batch"));
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, 0, &r1, a, na, ta, w), SPARQ_ERR_ARG);
  assert_int_equal(sparq_diffusion_training_batch(&d, NULL, BN, BD, &r1, a, na, ta, w), SPARQ_ERR_ARG);
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, BD, NULL, a, na, ta, w), SPARQ_ERR_ARG);
  assert_int_equal(sparq_diffusion_training_batch(&d, x0, BN, BD, &r1, a, na, ta, NULL), SPARQ_ERR_ARG);
  sparq_diffusion_free(&d);
  sparq_diffusion zero;
  memset(&zero, 0, sizeof zero); /* VP without tables */
  assert_int_equal(sparq_diffusion_training_batch(&zero, x0, BN, BD, &r1, a, na, ta, w), SPARQ_ERR_ARG);
}

int main(void) {
  sparq_set_threads(2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(vp_table_matches_closed_form),
      cmocka_unit_test(vp_sigma_and_timestep_are_inverse),
      cmocka_unit_test(edm_preconditioning),
      cmocka_unit_test(karras_grid),
      cmocka_unit_test(names_round_trip),
      cmocka_unit_test(vp_batch_identities),
      cmocka_unit_test(edm_batch_identities),
      cmocka_unit_test(batch_is_deterministic_and_checks_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
