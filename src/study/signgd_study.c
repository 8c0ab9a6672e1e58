/* The spec's section 7 protocol: the grid of runs, running them across
 * threads, and the per-run figures of the table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "study/signgd_internal.h"

static const double protocol_snrs[SPARQ_SIGNGD_PROTOCOL_SNRS] = {0.1, 0.25, 0.5, 1.0};

sparq_status sparq_signgd_protocol(int64_t d, int64_t steps, bool random_position, sparq_signgd_config **out,
                                   size_t *count) {
  if (!out || !count) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_protocol: out or count is NULL");
  *out = NULL;
  *count = 0;
  const size_t total = 3 * SPARQ_SIGNGD_PROTOCOL_SNRS * SPARQ_SIGNGD_PROTOCOL_SEEDS;
  sparq_signgd_config *c = sparq_alloc(total * sizeof *c, "signgd protocol configs");
  if (!c) return SPARQ_ERR_NOMEM;
  size_t k = 0;
  for (int o = 0; o < 3; o++)
    for (int i = 0; i < SPARQ_SIGNGD_PROTOCOL_SNRS; i++)
      for (int seed = 0; seed < SPARQ_SIGNGD_PROTOCOL_SEEDS; seed++) {
        sparq_signgd_config_default(&c[k], (sparq_signgd_optim)o);
        c[k].snr = protocol_snrs[i];
        c[k].seed = (uint64_t)seed;
        c[k].random_position = random_position;
        if (d > 0) c[k].d = d;
        if (steps > 0) c[k].steps = steps;
        sparq_status st = sparq_signgd_config_check(&c[k]);
        if (st != SPARQ_OK) {
          sparq_free(c);
          return st;
        }
        k++;
      }
  *out = c;
  *count = total;
  return SPARQ_OK;
}

sparq_status sparq_signgd_run_all(const sparq_signgd_config *configs, size_t count, sparq_signgd_trace *traces,
                                  sparq_signgd_done_fn on_done, void *ctx) {
  if (count == 0) return SPARQ_OK;
  if (!configs || !traces) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_run_all: configs or traces is NULL");
  memset(traces, 0, count * sizeof *traces);
  size_t done = 0, first_bad = count;
  sparq_status first_status = SPARQ_OK;
  char message[1024] = "";
  /* each run is single-threaded and owns its draws, so which thread runs it
   * (dynamic schedule) cannot change its result */
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < count; i++) {
    sparq_thread_set_ftz();
    sparq_status st = sparq_signgd_train(&configs[i], &traces[i], NULL, NULL);
#pragma omp critical(sparq_signgd_run_all)
    {
      if (st != SPARQ_OK && i < first_bad) {
        first_bad = i;
        first_status = st;
        snprintf(message, sizeof message, "%s", sparq_last_error());
      }
      done++;
      if (on_done) on_done(ctx, done, count);
    }
  }
  if (first_bad < count) {
    for (size_t i = 0; i < count; i++) sparq_signgd_trace_free(&traces[i]);
    return sparq_fail(first_status, "%s (run %zu: %s SNR %g seed %llu)", message, first_bad,
                      sparq_signgd_optim_name(configs[first_bad].optim), configs[first_bad].snr,
                      (unsigned long long)configs[first_bad].seed);
  }
  return SPARQ_OK;
}

/* The logged point at `step`, or `none` (every field NaN) when there is none. */
static const sparq_signgd_point *point_or(const sparq_signgd_trace *t, int64_t step, const sparq_signgd_point *none) {
  const sparq_signgd_point *p = step >= 0 ? sparq_signgd_trace_at(t, step) : NULL;
  return p ? p : none;
}
#define AT(t, step, field) (point_or(t, step, &none)->field)

void sparq_signgd_summarize(const sparq_signgd_trace *t, sparq_signgd_summary *out) {
  const int64_t T = t->config.steps, early = T < 10 ? T : 10;
  sparq_signgd_point none = {.step = -1};
#define NONE(field) none.field = NAN;
  SG_FIELDS(NONE)
#undef NONE
  out->t_conv = t->t_conv;
  out->test_loss_conv = AT(t, t->t_conv, test_loss);
  out->train_loss_final = AT(t, T, train_loss);
  out->test_loss_final = AT(t, T, test_loss);
  out->test_error_final = AT(t, T, test_error);
  const double dn = AT(t, early, value_noise) - AT(t, 0, value_noise);
  const double ds = AT(t, early, value_signal) - AT(t, 0, value_signal);
  out->growth_ratio = early > 0 ? dn / ds : NAN;
  out->growth_predicted = t->config.snr > 0 ? sqrt(2.0 * (double)t->config.s / M_PI) / t->config.snr : NAN;
  out->t_align = t->t_align;
  out->s11_at_40 = AT(t, 40, s11);
  out->s21_at_50 = AT(t, 50, s21);
  out->t_s21_small = out->t_s21_tiny = -1;
  for (int64_t r = 0; r < t->count; r++) {
    const sparq_signgd_point *p = &t->points[r];
    if (out->t_s21_small < 0 && p->s21 < 1e-2) out->t_s21_small = p->step;
    if (out->t_s21_tiny < 0 && p->s21 < 1e-3) out->t_s21_tiny = p->step;
  }
  out->s11_at_tiny = AT(t, out->t_s21_tiny, s11);
  out->q_vote_final = AT(t, T, q_vote);
  out->k_vote_final = AT(t, T, k_vote);
  out->q_flip_final = AT(t, T, q_flip);
  out->k_flip_final = AT(t, T, k_flip);
  out->q_noise_pos_final = AT(t, T, q_noise_pos);
}
