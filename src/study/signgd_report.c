/* The study's report: per-run CSV, and a Markdown table per (optimizer, SNR)
 * with the acceptance checks measured on the runs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "study/signgd_internal.h"

/* Mean, minimum and maximum of the finite values of one summary field over
 * a group of runs; `missing` counts the runs where it is NaN or -1. */
typedef struct stat {
  double mean, min, max;
  int count, missing;
} stat;

typedef double (*field_fn)(const sparq_signgd_summary *s);

static stat gather(const sparq_signgd_summary *sum, const sparq_signgd_trace *traces, size_t count, int optim,
                   double snr_lo, double snr_hi, field_fn get) {
  stat r = {0, INFINITY, -INFINITY, 0, 0};
  double total = 0;
  for (size_t i = 0; i < count; i++) {
    const sparq_signgd_config *c = &traces[i].config;
    if ((int)c->optim != optim || c->snr < snr_lo || c->snr > snr_hi) continue;
    double x = get(&sum[i]);
    if (!isfinite(x)) {
      r.missing++;
      continue;
    }
    total += x;
    r.count++;
    if (x < r.min) r.min = x;
    if (x > r.max) r.max = x;
  }
  r.mean = r.count ? total / r.count : NAN;
  return r;
}

static double step_or_nan(int64_t step) { return step >= 0 ? (double)step : NAN; }
static double f_t_conv(const sparq_signgd_summary *s) { return step_or_nan(s->t_conv); }
static double f_test_conv(const sparq_signgd_summary *s) { return s->test_loss_conv; }
static double f_test_final(const sparq_signgd_summary *s) { return s->test_loss_final; }
static double f_err_final(const sparq_signgd_summary *s) { return s->test_error_final; }
static double f_train_final(const sparq_signgd_summary *s) { return s->train_loss_final; }
static double f_growth(const sparq_signgd_summary *s) { return s->growth_ratio; }
static double f_predicted(const sparq_signgd_summary *s) { return s->growth_predicted; }
static double f_t_align(const sparq_signgd_summary *s) { return step_or_nan(s->t_align); }
static double f_s11_40(const sparq_signgd_summary *s) { return s->s11_at_40; }
static double f_s21_50(const sparq_signgd_summary *s) { return s->s21_at_50; }
static double f_t_small(const sparq_signgd_summary *s) { return step_or_nan(s->t_s21_small); }
static double f_t_tiny(const sparq_signgd_summary *s) { return step_or_nan(s->t_s21_tiny); }
static double f_s11_tiny(const sparq_signgd_summary *s) { return s->s11_at_tiny; }
static double f_q_vote(const sparq_signgd_summary *s) { return s->q_vote_final; }
static double f_k_vote(const sparq_signgd_summary *s) { return s->k_vote_final; }
static double f_q_flip(const sparq_signgd_summary *s) { return s->q_flip_final; }
static double f_q_pos(const sparq_signgd_summary *s) { return s->q_noise_pos_final; }

/* "mean [min, max]" (just the value when they agree), with "k never" for
 * runs that have no value; "-" when no run has one. */
static void cell(sg_text *t, stat s, const char *fmt) {
  sg_text_printf(t, " | ");
  if (s.count == 0) {
    sg_text_printf(t, s.missing ? "never" : "-");
    return;
  }
  sg_text_printf(t, fmt, s.mean);
  if (s.min != s.max) {
    sg_text_printf(t, " [");
    sg_text_printf(t, fmt, s.min);
    sg_text_printf(t, ", ");
    sg_text_printf(t, fmt, s.max);
    sg_text_printf(t, "]");
  }
  if (s.missing) sg_text_printf(t, ", %d never", s.missing);
}

/* The distinct values of (optim, snr) in the order they first appear. */
typedef struct group {
  int optim;
  double snr;
} group;

static size_t groups_of(const sparq_signgd_trace *traces, size_t count, group *out) {
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    group g = {(int)traces[i].config.optim, traces[i].config.snr};
    size_t j = 0;
    while (j < n && !(out[j].optim == g.optim && out[j].snr == g.snr)) j++;
    if (j == n) out[n++] = g;
  }
  return n;
}

static void settings(sg_text *t, const sparq_signgd_trace *traces, size_t count) {
  const sparq_signgd_config *c = &traces[0].config;
  sg_text_printf(t,
                 "# SignGD on a two-layer transformer: training dynamics\n\n"
                 "%zu runs. Data: n %lld, n_test %lld, d %lld, s %lld, sigma_p %g, signal %s. "
                 "Model: m_k %lld, m_v %lld, sigma0 %g. T %lld steps; lr",
                 count, (long long)c->n, (long long)c->n_test, (long long)c->d, (long long)c->s, c->sigma_p,
                 c->random_position ? "at a random position" : "in patch 1", (long long)c->m_k, (long long)c->m_v,
                 c->sigma0, (long long)c->steps);
  int seen[3] = {0};
  for (size_t i = 0; i < count; i++) {
    const sparq_signgd_config *k = &traces[i].config;
    if (seen[k->optim]++) continue;
    sg_text_printf(t, " %s %g", sparq_signgd_optim_name(k->optim), k->lr);
    if (k->optim == SPARQ_SIGNGD_OPT_ADAM)
      sg_text_printf(t, " (beta1 %g, beta2 %g, eps %g)", k->beta1, k->beta2, k->eps);
  }
  sg_text_printf(t, ".\nEach cell: mean over seeds [min, max]. t_conv: first step with training loss < %g.\n\n",
                 SPARQ_SIGNGD_CONV_LOSS);
}

static void tables(sg_text *t, const sparq_signgd_summary *sum, const sparq_signgd_trace *traces, size_t count) {
  group *g = malloc(count * sizeof *g);
  if (!g) {
    t->failed = 1;
    return;
  }
  const size_t ng = groups_of(traces, count, g);
  sg_text_printf(t, "## Convergence and generalisation\n\n"
                    "| optimizer | SNR | t_conv | test loss at t_conv | test loss at T | test error at T | "
                    "train loss at T |\n|---|---|---|---|---|---|---|\n");
  for (size_t j = 0; j < ng; j++) {
#define G(fn) gather(sum, traces, count, g[j].optim, g[j].snr, g[j].snr, fn)
    sg_text_printf(t, "| %s | %g", sparq_signgd_optim_name((sparq_signgd_optim)g[j].optim), g[j].snr);
    cell(t, G(f_t_conv), "%.0f");
    cell(t, G(f_test_conv), "%.3f");
    cell(t, G(f_test_final), "%.3f");
    cell(t, G(f_err_final), "%.3f");
    cell(t, G(f_train_final), "%.2g");
    sg_text_printf(t, " |\n");
  }
  sg_text_printf(t,
                 "\n## Stage markers\n\n"
                 "I: growth of the mean value noise over the value signal, steps 0-10 (SignGD prediction "
                 "sqrt(2s/pi)/SNR). II: t_align, first step with query/key noise sign alignment >= %g. "
                 "III: fraction of neurons whose query signal sign follows the key-noise majority vote (q) and whose "
                 "key signal sign opposes the query-noise vote (k), at T. IV: s21 (noise query -> signal key) "
                 "collapse while s11 stays put; late sign flips of the query noise since t_align; fraction of "
                 "positive query noise at T.\n\n"
                 "| optimizer | SNR | I: growth (pred.) | II: t_align | s11 at 40 | s21 at 50 | III: q vote | "
                 "III: k vote | IV: t(s21 < 1e-3) | s11 there | q flip at T | q noise > 0 at T |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
                 SPARQ_SIGNGD_ALIGNED);
  for (size_t j = 0; j < ng; j++) {
    sg_text_printf(t, "| %s | %g", sparq_signgd_optim_name((sparq_signgd_optim)g[j].optim), g[j].snr);
    cell(t, G(f_growth), "%.3g");
    stat pred = G(f_predicted);
    if (pred.count) sg_text_printf(t, " (%.3g)", pred.mean);
    cell(t, G(f_t_align), "%.0f");
    cell(t, G(f_s11_40), "%.3f");
    cell(t, G(f_s21_50), "%.2g");
    cell(t, G(f_q_vote), "%.2f");
    cell(t, G(f_k_vote), "%.2f");
    cell(t, G(f_t_tiny), "%.0f");
    cell(t, G(f_s11_tiny), "%.3f");
    cell(t, G(f_q_flip), "%.2f");
    cell(t, G(f_q_pos), "%.2f");
    sg_text_printf(t, " |\n");
#undef G
  }
  free(g);
}

/* The runs an acceptance line looks at: one optimizer, an SNR range. */
typedef struct check_group {
  const sparq_signgd_summary *sum;
  const sparq_signgd_trace *traces;
  size_t count;
  int optim;
  double snr_lo, snr_hi;
} check_group;

/* One acceptance line: the worst run's figure against the threshold, and
 * when the group spans several SNRs the worst run of each, so a miss shows
 * where it is. Groups without runs (a single run, a partial grid) print
 * nothing. */
static void check(sg_text *t, const char *what, check_group g, field_fn get, bool want_max, double limit,
                  bool at_most) {
  const stat s = gather(g.sum, g.traces, g.count, g.optim, g.snr_lo, g.snr_hi, get);
  if (s.count == 0 && s.missing == 0) return;
  const double worst = want_max ? s.max : s.min;
  const bool ok = s.count > 0 && s.missing == 0 && (at_most ? worst <= limit : worst >= limit);
  sg_text_printf(t, "- %s: ", what);
  if (s.count == 0) sg_text_printf(t, "no run reached it");
  else sg_text_printf(t, "%s %.4g over %d runs", want_max ? "worst (max)" : "worst (min)", worst, s.count);
  if (s.missing) sg_text_printf(t, ", %d runs never reached it", s.missing);
  double done[64];
  size_t ndone = 0;
  for (size_t i = 0; i < g.count && ndone < 64; i++) {
    const double snr = g.traces[i].config.snr;
    if ((int)g.traces[i].config.optim != g.optim || snr < g.snr_lo || snr > g.snr_hi) continue;
    size_t j = 0;
    while (j < ndone && done[j] != snr) j++;
    if (j == ndone) done[ndone++] = snr;
  }
  for (size_t j = 0; ndone > 1 && j < ndone; j++) {
    const stat one = gather(g.sum, g.traces, g.count, g.optim, done[j], done[j], get);
    sg_text_printf(t, "%s SNR %g: ", j ? "," : " (by SNR:", done[j]);
    if (one.count) sg_text_printf(t, "%.4g", want_max ? one.max : one.min);
    if (one.missing) sg_text_printf(t, "%s%d never", one.count ? " + " : "", one.missing);
    if (j + 1 == ndone) sg_text_printf(t, ")");
  }
  sg_text_printf(t, " -> %s\n", ok ? "yes" : "NO");
}

static void checks(sg_text *out, const sparq_signgd_summary *sum, const sparq_signgd_trace *traces, size_t count) {
  const int S = SPARQ_SIGNGD_OPT_SIGN, A = SPARQ_SIGNGD_OPT_ADAM, D = SPARQ_SIGNGD_OPT_GD;
  sg_text t = {0};
#define G(o, lo, hi) ((check_group){sum, traces, count, o, lo, hi})
  check(&t, "SignGD reaches training loss < 0.01 within 100 steps at every SNR", G(S, 0, INFINITY), f_t_conv, true,
        100, true);
  check(&t, "SignGD test loss at t_conv >= 0.35 at SNR 1", G(S, 1, 1), f_test_conv, false, 0.35, false);
  check(&t, "SignGD test loss at t_conv >= 0.55 at SNR <= 0.25", G(S, 0, 0.25), f_test_conv, false, 0.55, false);
  check(&t, "GD test loss at T <= 0.05", G(D, 0, INFINITY), f_test_final, true, 0.05, true);
  check(&t, "Adam test loss stays high: at T >= 0.35 (our threshold: the issue's SignGD bar at SNR 1)",
        G(A, 0, INFINITY), f_test_final, false, 0.35, false);
  check(&t, "SignGD query/key noise alignment >= 0.95 by step 20", G(S, 0, INFINITY), f_t_align, true, 20, true);
  check(&t, "SignGD at SNR 0.1: s21 < 1e-2 by step 50", G(S, 0.1, 0.1), f_t_small, true, 50, true);
  check(&t, "SignGD at SNR 0.1: s11 > 0.4 at step 40", G(S, 0.1, 0.1), f_s11_40, false, 0.4, false);
#undef G
  if (t.failed) out->failed = 1;
  if (t.len)
    sg_text_printf(out, "\n## Acceptance checks (issue #11; the worst run of each group)\n\n%.*s", (int)t.len, t.buf);
  sg_text_free(&t);
}

static void csv(sg_text *t, const sparq_signgd_summary *sum, const sparq_signgd_trace *traces, size_t count) {
  sg_text_printf(t, "optimizer,snr,seed,d,steps,random_position,t_conv,test_loss_conv,train_loss_final,"
                    "test_loss_final,test_error_final,growth_ratio,growth_predicted,t_align,s11_at_40,s21_at_50,"
                    "t_s21_small,t_s21_tiny,s11_at_tiny,q_vote_final,k_vote_final,q_flip_final,k_flip_final,"
                    "q_noise_pos_final\n");
  for (size_t i = 0; i < count; i++) {
    const sparq_signgd_config *c = &traces[i].config;
    const sparq_signgd_summary *s = &sum[i];
    sg_text_printf(t, "%s,%g,%llu,%lld,%lld,%d,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%lld,%.6g,%.6g,%lld,%lld,%.6g,%.6g,"
                      "%.6g,%.6g,%.6g,%.6g\n",
                   sparq_signgd_optim_name(c->optim), c->snr, (unsigned long long)c->seed, (long long)c->d,
                   (long long)c->steps, c->random_position ? 1 : 0, (long long)s->t_conv, s->test_loss_conv,
                   s->train_loss_final, s->test_loss_final, s->test_error_final, s->growth_ratio,
                   s->growth_predicted, (long long)s->t_align, s->s11_at_40, s->s21_at_50, (long long)s->t_s21_small,
                   (long long)s->t_s21_tiny, s->s11_at_tiny, s->q_vote_final, s->k_vote_final, s->q_flip_final,
                   s->k_flip_final, s->q_noise_pos_final);
  }
}

sparq_status sparq_signgd_write_report(const sparq_signgd_trace *traces, size_t count, const char *md_path,
                                       const char *csv_path, char **md_text) {
  if (md_text) *md_text = NULL;
  if (!traces || count == 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_write_report: no traces");
  sparq_signgd_summary *sum = malloc(count * sizeof *sum);
  if (!sum) return sparq_fail(SPARQ_ERR_NOMEM, "sparq_signgd_write_report: out of memory");
  for (size_t i = 0; i < count; i++) sparq_signgd_summarize(&traces[i], &sum[i]);
  sg_text md = {0}, table = {0};
  settings(&md, traces, count);
  tables(&md, sum, traces, count);
  checks(&md, sum, traces, count);
  csv(&table, sum, traces, count);
  free(sum);
  sparq_status st = SPARQ_OK;
  if (md.failed || table.failed) st = sparq_fail(SPARQ_ERR_NOMEM, "sparq_signgd_write_report: out of memory");
  if (st == SPARQ_OK && csv_path) st = sg_text_commit(&table, csv_path);
  if (st == SPARQ_OK && md_text) {
    *md_text = malloc(md.len + 1);
    if (!*md_text) st = sparq_fail(SPARQ_ERR_NOMEM, "sparq_signgd_write_report: out of memory");
    else {
      memcpy(*md_text, md.buf, md.len);
      (*md_text)[md.len] = '\0';
    }
  }
  if (st == SPARQ_OK && md_path) st = sg_text_commit(&md, md_path);
  if (st != SPARQ_OK && md_text) {
    free(*md_text);
    *md_text = NULL;
  }
  sg_text_free(&md);
  sg_text_free(&table);
  return st;
}
