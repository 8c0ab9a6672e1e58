/* The samplers of diffusion.h on networks whose answers are known:
 *   - the exact-eps network of the 2-D toy with exact CFG: every sampler
 *     converges to the same reference endpoint, at its order (Euler and
 *     DDIM first, Heun and DPM-Solver++(2M) second), for VP eps, x0 and v
 *     heads and the EDM head;
 *   - Gaussian data, whose probability-flow ODE has a closed-form solution;
 *   - counting networks for the NFE statistics and the CFG batch layout;
 * plus determinism, thread independence and argument checks. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/diffusion.h"
#include "sparq/toy2d.h"

#define K SPARQ_TOY2D_CLASSES

/* ----------------------------------------------------------- toy runs */

enum { TN = 96 }; /* 24 samples per class */
static sparq_toy2d toy;

static void toy_noise(float *x) {
  sparq_rng rng = sparq_rng_make(7, 0);
  sparq_rng_fill_normal(&rng, x, 2 * TN, 0.0f, 1.0f);
}

static void toy_run(const sparq_diffusion *d, sparq_sampler_kind kind, int64_t steps, float w, float *x,
                    sparq_sample_stats *st) {
  sparq_toy2d_exact bind;
  sparq_denoiser net;
  sparq_toy2d_exact_denoiser(&bind, &toy, d, &net);
  int32_t y[TN];
  for (int i = 0; i < TN; i++) y[i] = i % K;
  toy_noise(x);
  sparq_sample_config c = sparq_sample_config_default();
  c.sampler = kind;
  c.steps = steps;
  c.cfg_scale = w;
  assert_int_equal(sparq_diffusion_sample(d, &net, &c, y, TN, x, st), SPARQ_OK);
}

/* Root mean square over samples of the endpoint distance. */
static double rms(const float *a, const float *b) {
  double s = 0.0;
  for (int i = 0; i < 2 * TN; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return sqrt(s / TN);
}

/* Least-squares slope of -ln err against ln steps. */
static double fit_order(const int64_t *steps, const double *err, int m) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (int i = 0; i < m; i++) {
    const double lx = log((double)steps[i]), ly = -log(err[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

/* Each sampler against the reference endpoint (Heun, 1000 steps: its error,
 * ~(40/1000)^2 of the 40-step Heun error, is far below every error fitted;
 * a DPM-Solver++ reference at 2000 steps agrees to ~1e-5). Steps 20/40/80:
 * at 10 steps DPM-Solver++ on this sharp toy is not yet asymptotic. */
static void convergence_orders(const sparq_diffusion *d, const char *label) {
  static float ref[2 * TN], ref2[2 * TN], x[2 * TN];
  const float w = 2.0f;
  toy_run(d, SPARQ_SAMPLER_HEUN, 1000, w, ref, NULL);
  toy_run(d, SPARQ_SAMPLER_DPMPP2M, 2000, w, ref2, NULL);
  assert_true(rms(ref, ref2) < 5e-5);
  const int64_t steps[3] = {20, 40, 80};
  const double lo[4] = {0.85, 0.85, 1.8, 1.8}, hi[4] = {1.2, 1.2, 2.6, 2.6};
  const double max_err40[4] = {0.1, 0.1, 0.015, 0.015};
  for (int k = 0; k < 4; k++) {
    double err[3];
    for (int i = 0; i < 3; i++) {
      toy_run(d, (sparq_sampler_kind)k, steps[i], w, x, NULL);
      err[i] = rms(x, ref);
    }
    const double order = fit_order(steps, err, 3);
    print_message("%-7s %-8s err@20 %.3e err@40 %.3e err@80 %.3e order %.2f\n", label,
                  sparq_sampler_name((sparq_sampler_kind)k), err[0], err[1], err[2], order);
    assert_true(err[2] < err[1] && err[1] < err[0]);
    assert_true(err[1] < max_err40[k]);
    assert_true(order > lo[k] && order < hi[k]);
  }
}

static void orders_vp_eps(void **state) {
  sparq_diffusion *d = *state;
  assert_int_equal(sparq_diffusion_init(d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  convergence_orders(d, "vp-eps");
}
static void orders_vp_x0(void **state) {
  sparq_diffusion *d = *state;
  assert_int_equal(sparq_diffusion_init(d, SPARQ_DIFF_VP, SPARQ_PRED_X0), SPARQ_OK);
  convergence_orders(d, "vp-x0");
}
static void orders_vp_v(void **state) {
  sparq_diffusion *d = *state;
  assert_int_equal(sparq_diffusion_init(d, SPARQ_DIFF_VP, SPARQ_PRED_V), SPARQ_OK);
  convergence_orders(d, "vp-v");
}
static void orders_edm(void **state) {
  sparq_diffusion *d = *state;
  assert_int_equal(sparq_diffusion_init(d, SPARQ_DIFF_EDM, SPARQ_PRED_EPS), SPARQ_OK);
  convergence_orders(d, "edm");
}

static int diff_setup(void **state) {
  static sparq_diffusion d;
  memset(&d, 0, sizeof d);
  *state = &d;
  return 0;
}
static int diff_teardown(void **state) {
  sparq_diffusion_free(*state);
  return 0;
}

/* The heads are different views of one model: the same exact network through
 * eps, x0 and v heads gives the same samples up to float rounding. */
static void heads_agree(void **state) {
  (void)state;
  static float a[2 * TN], b[2 * TN];
  sparq_diffusion de, dv;
  assert_int_equal(sparq_diffusion_init(&de, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  toy_run(&de, SPARQ_SAMPLER_DPMPP2M, 25, 3.0f, a, NULL);
  for (int p = 1; p < 3; p++) {
    assert_int_equal(sparq_diffusion_init(&dv, SPARQ_DIFF_VP, (sparq_diff_pred)p), SPARQ_OK);
    toy_run(&dv, SPARQ_SAMPLER_DPMPP2M, 25, 3.0f, b, NULL);
    assert_true(rms(a, b) < 1e-4);
    sparq_diffusion_free(&dv);
  }
  sparq_diffusion_free(&de);
}

/* VP DDIM on its integer grid and the Karras samplers solve one ODE from one
 * start, so DDIM at 1000 steps lands next to the Heun reference; DDIM eta 0
 * on EDM's Karras grid is Euler exactly. */
static void ddim_is_the_same_ode(void **state) {
  (void)state;
  static float a[2 * TN], b[2 * TN];
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  toy_run(&d, SPARQ_SAMPLER_DDIM, 1000, 1.5f, a, NULL);
  toy_run(&d, SPARQ_SAMPLER_HEUN, 300, 1.5f, b, NULL);
  assert_true(rms(a, b) < 5e-3);
  sparq_diffusion_free(&d);
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_EDM, SPARQ_PRED_EPS), SPARQ_OK);
  toy_run(&d, SPARQ_SAMPLER_DDIM, 17, 1.5f, a, NULL);
  toy_run(&d, SPARQ_SAMPLER_EULER, 17, 1.5f, b, NULL);
  assert_true(rms(a, b) < 1e-5);
  sparq_diffusion_free(&d);
}

/* Guidance sharpens toward the class: the mean Bayes posterior p(c|x) of
 * the samples' own class rises with w (ln p(x|c) need not: strong guidance
 * pushes samples past the class's modes), and w = 0 is the unconditional
 * sampler. */
static void guidance_sharpens_and_w0_is_unconditional(void **state) {
  (void)state;
  static float a[2 * TN], b[2 * TN];
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  double prev = -INFINITY;
  const float ws[] = {1.0f, 2.0f, 4.0f};
  for (int wi = 0; wi < 3; wi++) {
    toy_run(&d, SPARQ_SAMPLER_DPMPP2M, 30, ws[wi], a, NULL);
    double own = 0.0;
    for (int i = 0; i < TN; i++) {
      double post[K];
      sparq_toy2d_class_posterior(&toy, a + 2 * i, post);
      own += post[i % K] / TN;
    }
    print_message("w %.1f mean p(c|x) %.4f\n", ws[wi], own);
    assert_true(own > prev + 0.02);
    prev = own;
  }
  toy_run(&d, SPARQ_SAMPLER_DPMPP2M, 30, 0.0f, a, NULL);
  sparq_toy2d_exact bind;
  sparq_denoiser net;
  sparq_toy2d_exact_denoiser(&bind, &toy, &d, &net);
  int32_t y[TN];
  for (int i = 0; i < TN; i++) y[i] = K;
  toy_noise(b);
  sparq_sample_config c = sparq_sample_config_default();
  c.sampler = SPARQ_SAMPLER_DPMPP2M;
  c.steps = 30;
  assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, TN, b, NULL), SPARQ_OK);
  assert_true(rms(a, b) < 1e-4);
  sparq_diffusion_free(&d);
}

/* --------------------------------------------------- Gaussian data */

/* Data N(0, v I): D(x~, sigma) = x~ v / (v + sigma^2) for every formulation,
 * and the PF-ODE moves x~ along x~ sqrt(sigma^2 + v): the final D at sigma_lo
 * is x~_0 sqrt(v + lo^2) / sqrt(v + hi^2) * v / (v + lo^2). The network
 * returns the exact head output for it; it also counts calls and checks the
 * CFG batch layout. */
typedef struct gauss_net {
  const sparq_diffusion *d;
  double var;
  int64_t n;       /* rows of the sampling call */
  int64_t dim;
  int32_t label;   /* y of the conditional rows */
  float extra_c, extra_u;
  bool has_extra;
  int64_t calls, rows;
  bool layout_ok;
  bool fail;
} gauss_net;

static sparq_status gauss_eval(void *self, const float *x, const float *t, const int32_t *y, const float *extra,
                               int64_t n, float *out) {
  gauss_net *g = self;
  if (g->fail) return sparq_fail(SPARQ_ERR_INTERNAL, "gauss_eval: asked to fail");
  g->calls++;
  g->rows += n;
  if (n != g->n && n != 2 * g->n) g->layout_ok = false;
  for (int64_t i = 0; i < n; i++) {
    const bool cond = i < g->n;
    if (y[i] != (cond ? g->label : 7)) g->layout_ok = false;
    if (g->has_extra != (extra != NULL)) g->layout_ok = false;
    if (extra && extra[i] != (cond ? g->extra_c : g->extra_u)) g->layout_ok = false;
    if (t[i] != t[0]) g->layout_ok = false;
  }
  double a, s;
  sparq_diffusion_alpha_sigma(g->d, t[0], &a, &s);
  const double sig = s / a; /* sigma space */
  const sparq_edm_scalings c = sparq_edm_precond(g->d, sig);
  const int64_t len = n * g->dim;
  for (int64_t k = 0; k < len; k++) {
    double xs;
    if (g->d->kind == SPARQ_DIFF_EDM)
      xs = x[k] / c.c_in;
    else
      xs = x[k] / a;
    const double D = xs * g->var / (g->var + sig * sig), e = (xs - D) / sig;
    double o;
    if (g->d->kind == SPARQ_DIFF_EDM)
      o = (D - c.c_skip * xs) / c.c_out;
    else if (g->d->pred == SPARQ_PRED_X0)
      o = D;
    else if (g->d->pred == SPARQ_PRED_V)
      o = a * e - s * D;
    else
      o = e;
    out[k] = (float)o;
  }
  return SPARQ_OK;
}

enum { GN = 48, GD = 784 }; /* 37632 floats: above the parallel threshold */
enum { SD = 8 };              /* a small dim for the tests that need no threads */

static void gauss_setup(gauss_net *g, const sparq_diffusion *d, sparq_denoiser *net, int64_t dim) {
  memset(g, 0, sizeof *g);
  g->d = d;
  g->var = 0.25;
  g->n = GN;
  g->dim = dim;
  g->label = 3;
  g->layout_ok = true;
  net->self = g;
  net->eval = gauss_eval;
  net->dim = dim;
  net->null_class = 7;
}

/* Relative endpoint error against the closed form, at 50 and 100 steps: it
 * falls by about 2 (first order) or 4 (second order). The ODE shrinks x~ by
 * ~160x from sigma_max, so even this linear problem needs its steps. */
static void gaussian_closed_form(void **state) {
  (void)state;
  static float x[GN * SD], x0[GN * SD];
  int32_t y[GN];
  for (int i = 0; i < GN; i++) y[i] = 3;
  sparq_rng rng = sparq_rng_make(1, 1);
  sparq_rng_fill_normal(&rng, x0, GN * SD, 0.0f, 1.0f);
  for (int cfg = 0; cfg < 4; cfg++) {
    sparq_diffusion d;
    assert_int_equal(sparq_diffusion_init(&d, cfg == 3 ? SPARQ_DIFF_EDM : SPARQ_DIFF_VP,
                                          cfg == 3 ? SPARQ_PRED_EPS : (sparq_diff_pred)cfg),
                     SPARQ_OK);
    double lo, hi;
    sparq_diffusion_sigma_range(&d, &lo, &hi);
    const double v = 0.25;
    const double start = cfg == 3 ? hi : sqrt(1.0 + hi * hi);
    const double gain = start * sqrt(v + lo * lo) / sqrt(v + hi * hi) * v / (v + lo * lo);
    for (int k = 0; k < 4; k++) {
      double rel[2];
      for (int r = 0; r < 2; r++) {
        gauss_net g;
        sparq_denoiser net;
        gauss_setup(&g, &d, &net, SD);
        memcpy(x, x0, sizeof x);
        sparq_sample_config c = sparq_sample_config_default();
        c.sampler = (sparq_sampler_kind)k;
        c.steps = 50 << r;
        assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, GN, x, NULL), SPARQ_OK);
        double e = 0.0, m = 0.0;
        for (int i = 0; i < GN * SD; i++) {
          e = fmax(e, fabs(x[i] - gain * x0[i]));
          m = fmax(m, fabs(gain * x0[i]));
        }
        rel[r] = e / m;
      }
      const bool second = k == SPARQ_SAMPLER_HEUN || k == SPARQ_SAMPLER_DPMPP2M;
      print_message("gaussian %-6s %-8s rel err@50 %.3e @100 %.3e\n", cfg == 3 ? "edm" : sparq_diff_pred_name(d.pred),
                    sparq_sampler_name((sparq_sampler_kind)k), rel[0], rel[1]);
      assert_true(rel[1] < (second ? 3e-3 : 4e-2));
      assert_true(rel[0] / rel[1] > (second ? 3.4 : 1.7));
    }
    sparq_diffusion_free(&d);
  }
}

/* ------------------------------------------------ NFE and CFG layout */

static void nfe_counters(void **state) {
  (void)state;
  static float x[GN * SD];
  float extra[GN];
  int32_t y[GN];
  for (int i = 0; i < GN; i++) {
    y[i] = 3;
    extra[i] = 0.5f;
  }
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  for (int k = 0; k < 4; k++)
    for (int guided = 0; guided < 2; guided++)
      for (int with_extra = 0; with_extra < 2; with_extra++) {
        gauss_net g;
        sparq_denoiser net;
        gauss_setup(&g, &d, &net, SD);
        g.has_extra = with_extra;
        g.extra_c = 0.5f;
        g.extra_u = 1.0f;
        sparq_sample_config c = sparq_sample_config_default();
        c.sampler = (sparq_sampler_kind)k;
        c.steps = 7;
        c.cfg_scale = guided ? 2.5f : 1.0f;
        c.extra = with_extra ? extra : NULL;
        c.extra_uncond = 1.0f;
        memset(x, 0, sizeof x);
        sparq_sample_stats st;
        assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st), SPARQ_OK);
        const int64_t evals = k == SPARQ_SAMPLER_HEUN ? 2 * 7 - 1 : 7;
        assert_int_equal(st.calls, evals);
        assert_int_equal(g.calls, evals);
        assert_int_equal(st.nfe, evals * (guided ? 2 : 1));
        assert_int_equal(st.rows, evals * GN * (guided ? 2 : 1));
        assert_int_equal(g.rows, st.rows);
        assert_true(g.layout_ok);
        assert_true(st.seconds >= 0.0);
      }
  sparq_diffusion_free(&d);
}

/* -------------------------------------------- determinism and threads */

typedef struct trace {
  int64_t calls, last_step;
  bool ordered, final_is_x0;
} trace;

static void on_step(void *user, int64_t step, int64_t steps, const float *x, const float *x0_hat, int64_t n) {
  trace *t = user;
  if (step != t->last_step + 1 || steps != 12) t->ordered = false;
  t->last_step = step;
  t->calls++;
  if (step == steps - 1) t->final_is_x0 = memcmp(x, x0_hat, (size_t)n * 2 * sizeof(float)) == 0;
}

static void ddim_eta_and_determinism(void **state) {
  (void)state;
  static float a[2 * TN], b[2 * TN], c0[2 * TN], det[2 * TN];
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  sparq_toy2d_exact bind;
  sparq_denoiser net;
  sparq_toy2d_exact_denoiser(&bind, &toy, &d, &net);
  int32_t y[TN];
  for (int i = 0; i < TN; i++) y[i] = i % K;
  sparq_sample_config c = sparq_sample_config_default();
  c.steps = 12;
  c.eta = 1.0f;
  c.seed = 99;
  c.cfg_scale = 1.5f;
  trace tr = {0, -1, true, false};
  c.on_step = on_step;
  c.user = &tr;
  float *outs[3] = {a, b, c0};
  for (int r = 0; r < 3; r++) {
    if (r == 2) c.seed = 100;
    tr.last_step = -1; /* each call counts its steps from 0 */
    toy_noise(outs[r]);
    assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, TN, outs[r], NULL), SPARQ_OK);
  }
  assert_memory_equal(a, b, sizeof a);
  assert_true(rms(a, c0) > 1e-2); /* another seed, other noise */
  assert_int_equal(tr.calls, 36);
  assert_true(tr.ordered);
  assert_int_equal(tr.last_step, 11);
  assert_true(tr.final_is_x0);
  /* eta = 0: deterministic and independent of the seed. */
  c.eta = 0.0f;
  c.on_step = NULL;
  toy_noise(det);
  assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, TN, det, NULL), SPARQ_OK);
  c.seed = 5;
  toy_noise(a);
  assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, TN, a, NULL), SPARQ_OK);
  assert_memory_equal(a, det, sizeof a);
  assert_true(rms(det, b) > 1e-2);
  /* Stochastic samples still land on the data: mean ln p(x|c) near the ODE's. */
  double lp_sde = 0, lp_ode = 0;
  for (int i = 0; i < TN; i++) {
    lp_sde += sparq_toy2d_log_density(&toy, b + 2 * i, i % K) / TN;
    lp_ode += sparq_toy2d_log_density(&toy, det + 2 * i, i % K) / TN;
  }
  assert_true(lp_sde > lp_ode - 1.0);
  sparq_diffusion_free(&d);
}

static void results_do_not_depend_on_threads(void **state) {
  (void)state;
  static float x1[GN * GD], x2[GN * GD];
  int32_t y[GN];
  for (int i = 0; i < GN; i++) y[i] = 3;
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_EDM, SPARQ_PRED_EPS), SPARQ_OK);
  for (int k = 0; k < 4; k++) {
    float *xs[2] = {x1, x2};
    for (int th = 0; th < 2; th++) {
      sparq_set_threads(th + 1);
      gauss_net g;
      sparq_denoiser net;
      gauss_setup(&g, &d, &net, GD);
      sparq_rng rng = sparq_rng_make(4, 4);
      sparq_rng_fill_normal(&rng, xs[th], GN * GD, 0.0f, 1.0f);
      sparq_sample_config c = sparq_sample_config_default();
      c.sampler = (sparq_sampler_kind)k;
      c.steps = 6;
      c.eta = 0.7f;
      c.seed = 3;
      c.cfg_scale = 1.7f;
      assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, GN, xs[th], NULL), SPARQ_OK);
    }
    assert_memory_equal(x1, x2, sizeof x1);
  }
  sparq_set_threads(2);
  sparq_diffusion_free(&d);
}

/* ------------------------------------------------------ bad arguments */

static void bad_arguments(void **state) {
  (void)state;
  static float x[GN * SD];
  int32_t y[GN] = {0};
  sparq_diffusion d;
  assert_int_equal(sparq_diffusion_init(&d, SPARQ_DIFF_VP, SPARQ_PRED_EPS), SPARQ_OK);
  gauss_net g;
  sparq_denoiser net;
  gauss_setup(&g, &d, &net, SD);
  sparq_sample_config c = sparq_sample_config_default();
  sparq_sample_stats st;
#define EXPECT_ARG(call)                                                   \
  do {                                                                     \
    assert_int_equal((call), SPARQ_ERR_ARG);                               \
    assert_non_null(strstr(sparq_last_error(), "sparq_diffusion_sample")); \
  } while (0)
  c.steps = 0;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c.steps = 1001; /* DDIM on VP: more steps than timesteps */
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c = sparq_sample_config_default();
  c.cfg_scale = NAN;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c.cfg_scale = INFINITY;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c = sparq_sample_config_default();
  c.eta = -0.1f;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c.eta = NAN;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c = sparq_sample_config_default();
  c.sampler = (sparq_sampler_kind)9;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  c = sparq_sample_config_default();
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, 0, x, &st));
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, -3, x, &st));
  EXPECT_ARG(sparq_diffusion_sample(NULL, &net, &c, y, GN, x, &st));
  EXPECT_ARG(sparq_diffusion_sample(&d, NULL, &c, y, GN, x, &st));
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, NULL, y, GN, x, &st));
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, NULL, GN, x, &st));
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, NULL, &st));
  net.dim = 0;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  net.dim = SD;
  net.eval = NULL;
  EXPECT_ARG(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st));
  net.eval = gauss_eval;
  sparq_diffusion bare;
  memset(&bare, 0, sizeof bare); /* VP without tables */
  EXPECT_ARG(sparq_diffusion_sample(&bare, &net, &c, y, GN, x, &st));
  /* A failing network's status comes back unchanged. */
  g.fail = true;
  memset(x, 0, sizeof x);
  assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, GN, x, &st), SPARQ_ERR_INTERNAL);
  assert_non_null(strstr(sparq_last_error(), "gauss_eval"));
  g.fail = false;
  /* stats may be NULL; steps 1 works (one update straight to sigma 0). */
  c.steps = 1;
  for (int k = 0; k < 4; k++) {
    c.sampler = (sparq_sampler_kind)k;
    memset(x, 0, sizeof x);
    assert_int_equal(sparq_diffusion_sample(&d, &net, &c, y, GN, x, NULL), SPARQ_OK);
  }
  sparq_diffusion_free(&d);
#undef EXPECT_ARG
}

int main(void) {
  sparq_set_threads(2);
  sparq_toy2d_default(&toy);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(orders_vp_eps, diff_setup, diff_teardown),
      cmocka_unit_test_setup_teardown(orders_vp_x0, diff_setup, diff_teardown),
      cmocka_unit_test_setup_teardown(orders_vp_v, diff_setup, diff_teardown),
      cmocka_unit_test_setup_teardown(orders_edm, diff_setup, diff_teardown),
      cmocka_unit_test(heads_agree),
      cmocka_unit_test(ddim_is_the_same_ode),
      cmocka_unit_test(guidance_sharpens_and_w0_is_unconditional),
      cmocka_unit_test(gaussian_closed_form),
      cmocka_unit_test(nfe_counters),
      cmocka_unit_test(ddim_eta_and_determinism),
      cmocka_unit_test(results_do_not_depend_on_threads),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
