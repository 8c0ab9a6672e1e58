/* sparq signgd: one training run of the SignGD study, or the spec's whole
 * reproduction protocol (--reproduce) with its table and the four stage
 * figures drawn by gnuplot when it is installed. */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

extern char **environ;

/* Flags as parsed; NAN / -1 / NULL mean "not given". */
typedef struct flags {
  double snr, sigma_p, sigma0, lr, eps;
  int64_t d, s, n, m, steps, seed;
  const char *optim, *out;
  bool reproduce, random_position, no_plots;
} flags;

static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* Runs gnuplot on the script. Missing gnuplot is not an error: the data and
 * the script stay for later. */
static int draw_plots(const char *dir, const char *script) {
  char *argv[] = {"gnuplot", (char *)script, NULL};
  pid_t pid;
  int rc = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
  if (rc == ENOENT) {
    printf("plots skipped: gnuplot not found (install gnuplot-nox, then run: gnuplot %s)\n", script);
    return CLI_OK;
  }
  if (rc != 0) return cli_fail("gnuplot: cannot start: %s", strerror(rc));
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return cli_fail("gnuplot: wait failed: %s", strerror(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return cli_fail("%s: gnuplot failed (exit status %d)", script, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  printf("plots: %s/{losses,signal_noise,alignment,softmax}.png\n", dir);
  return CLI_OK;
}

/* Writes the gnuplot script for the traces and draws it unless --no-plots. */
static int plots(const flags *f, const sparq_signgd_trace *traces, const char *const *dat, size_t count) {
  char *script = join(f->out, "plots.gp");
  if (!script) return cli_fail("out of memory");
  int rc = CLI_OK;
  if (sparq_signgd_write_plot_script(script, f->out, traces, dat, count) != SPARQ_OK) rc = cli_fail_last_error();
  else if (f->no_plots) printf("plots not drawn (--no-plots); script: %s\n", script);
  else rc = draw_plots(f->out, script);
  free(script);
  return rc;
}

static void step_progress(void *ctx, int64_t step, double loss) {
  char extra[48];
  snprintf(extra, sizeof extra, "train loss %.3g", loss);
  sparq_progress_update(ctx, step + 1, extra);
}

static int single_run(const flags *f) {
  sparq_signgd_config c;
  sparq_signgd_optim optim = SPARQ_SIGNGD_OPT_SIGN;
  if (f->optim) sparq_signgd_optim_from_name(f->optim, &optim);
  sparq_signgd_config_default(&c, optim);
  if (!isnan(f->snr)) c.snr = f->snr;
  if (!isnan(f->sigma_p)) c.sigma_p = f->sigma_p;
  if (!isnan(f->sigma0)) c.sigma0 = f->sigma0;
  if (!isnan(f->lr)) c.lr = f->lr;
  if (!isnan(f->eps)) c.eps = f->eps;
  if (f->d >= 0) c.d = f->d;
  if (f->s >= 0) c.s = f->s;
  if (f->n >= 0) c.n = f->n;
  if (f->m >= 0) c.m_k = c.m_v = f->m;
  if (f->steps >= 0) c.steps = f->steps;
  if (f->seed >= 0) c.seed = (uint64_t)f->seed;
  c.random_position = f->random_position;
  if (sparq_signgd_config_check(&c) != SPARQ_OK) return cli_fail_last_error();

  printf("sparq signgd: %s, SNR %g, d %lld, s %lld, n %lld, m %lld, sigma_p %g, sigma0 %g, lr %g, T %lld, "
         "seed %llu%s\n",
         sparq_signgd_optim_name(c.optim), c.snr, (long long)c.d, (long long)c.s, (long long)c.n, (long long)c.m_k,
         c.sigma_p, c.sigma0, c.lr, (long long)c.steps, (unsigned long long)c.seed,
         c.random_position ? ", random signal position" : "");
  fflush(stdout);
  sparq_progress progress;
  sparq_progress_begin(&progress, stderr, "signgd", "step", c.steps + 1);
  sparq_signgd_trace trace;
  if (sparq_signgd_train(&c, &trace, step_progress, &progress) != SPARQ_OK) return cli_fail_last_error();
  sparq_progress_end(&progress, NULL);

  char *log = join(f->out, "log.jsonl"), *dat = join(f->out, "trace.dat"), *md = join(f->out, "table.md"),
       *csv = join(f->out, "runs.csv");
  int rc = CLI_OK;
  if (!log || !dat || !md || !csv) rc = cli_fail("out of memory");
  else if (sparq_signgd_write_log(log, &trace) != SPARQ_OK || sparq_signgd_write_dat(dat, &trace) != SPARQ_OK ||
           sparq_signgd_write_report(&trace, 1, md, csv, NULL) != SPARQ_OK)
    rc = cli_fail_last_error();
  if (rc == CLI_OK) {
    sparq_signgd_summary s;
    sparq_signgd_summarize(&trace, &s);
    if (s.t_conv >= 0)
      printf("t_conv %lld (training loss < %g): test loss there %.4f\n", (long long)s.t_conv, SPARQ_SIGNGD_CONV_LOSS,
             s.test_loss_conv);
    else
      printf("training loss never fell below %g\n", SPARQ_SIGNGD_CONV_LOSS);
    printf("step %lld: train loss %.3g, test loss %.4f, test error %.4f; wrote %s, %s and %s\n",
           (long long)c.steps, s.train_loss_final, s.test_loss_final, s.test_error_final, log, md, csv);
    const char *dats[1] = {dat};
    rc = plots(f, &trace, dats, 1);
  }
  free(log), free(dat), free(md), free(csv);
  sparq_signgd_trace_free(&trace);
  return rc;
}

static void run_progress(void *ctx, size_t done, size_t total) {
  (void)total;
  sparq_progress_update(ctx, (int64_t)done, NULL);
}

/* DIR/runs/<optim>-snr<SNR>-seed<K>.<ext> */
static char *run_path(const char *dir, const sparq_signgd_config *c, const char *ext) {
  char name[128];
  snprintf(name, sizeof name, "runs/%s-snr%g-seed%llu.%s", sparq_signgd_optim_name(c->optim), c->snr,
           (unsigned long long)c->seed, ext);
  return join(dir, name);
}

static int write_runs(const flags *f, const sparq_signgd_trace *traces, size_t count, char **dats) {
  for (size_t i = 0; i < count; i++) {
    char *log = run_path(f->out, &traces[i].config, "jsonl");
    dats[i] = run_path(f->out, &traces[i].config, "dat");
    if (!log || !dats[i]) {
      free(log);
      return cli_fail("out of memory");
    }
    sparq_status st = sparq_signgd_write_log(log, &traces[i]);
    free(log);
    if (st != SPARQ_OK || sparq_signgd_write_dat(dats[i], &traces[i]) != SPARQ_OK) return cli_fail_last_error();
  }
  return CLI_OK;
}

static int reproduce(const flags *f) {
  sparq_signgd_config *configs;
  size_t count;
  if (sparq_signgd_protocol(f->d, f->steps, f->random_position, &configs, &count) != SPARQ_OK)
    return cli_fail_last_error();
  printf("sparq signgd --reproduce: %zu runs (SignGD, Adam, GD x SNR 0.1, 0.25, 0.5, 1 x seeds 0-4), d %lld, "
         "T %lld%s, %d threads\n",
         count, (long long)configs[0].d, (long long)configs[0].steps,
         configs[0].random_position ? ", random signal position" : "", sparq_threads());
  fflush(stdout);
  double t0 = sparq_now();
  sparq_signgd_trace *traces = sparq_calloc(count, sizeof *traces, "signgd traces");
  char **dats = calloc(count, sizeof *dats);
  char *runs_dir = join(f->out, "runs"), *md = join(f->out, "table.md"), *csv = join(f->out, "runs.csv");
  char *text = NULL;
  int rc = CLI_OK;
  if (!traces || !dats || !runs_dir || !md || !csv) {
    rc = traces ? cli_fail("out of memory") : cli_fail_last_error();
    goto done;
  }
  sparq_progress progress;
  sparq_progress_begin(&progress, stderr, "signgd runs", "run", (int64_t)count);
  if (sparq_signgd_run_all(configs, count, traces, run_progress, &progress) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  sparq_progress_end(&progress, NULL);
  if ((rc = cli_mkdirs(runs_dir)) != CLI_OK || (rc = write_runs(f, traces, count, dats)) != CLI_OK) goto done;
  if (sparq_signgd_write_report(traces, count, md, csv, &text) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  printf("\n%s\nwrote %s, %s and the per-run logs in %s/ (%.1f s)\n", text, md, csv, runs_dir, sparq_now() - t0);
  rc = plots(f, traces, (const char *const *)dats, count);
done:
  for (size_t i = 0; traces && i < count; i++) sparq_signgd_trace_free(&traces[i]);
  for (size_t i = 0; dats && i < count; i++) free(dats[i]);
  sparq_free(traces);
  free(dats), free(runs_dir), free(md), free(csv), free(text);
  sparq_free(configs);
  return rc;
}

/* Flags the protocol fixes: naming one with --reproduce is a usage error. */
static int reproduce_conflict(const flags *f) {
  const struct {
    bool given;
    const char *name;
  } fixed[] = {{!isnan(f->snr), "snr"},     {f->s >= 0, "s"},           {f->n >= 0, "n"},
               {!isnan(f->sigma_p), "sigma-p"}, {f->m >= 0, "m"},           {!isnan(f->sigma0), "sigma0"},
               {!isnan(f->lr), "lr"},       {f->optim != NULL, "optim"}, {f->seed >= 0, "seed"},
               {!isnan(f->eps), "eps"}};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (fixed[i].given) {
      fprintf(stderr, "sparq signgd: --%s does not apply to --reproduce (the protocol fixes it)\n", fixed[i].name);
      cli_usage("signgd", false);
      return CLI_USAGE;
    }
  return CLI_OK;
}

int cli_signgd(int argc, char **argv) {
  flags f = {.snr = NAN, .sigma_p = NAN, .sigma0 = NAN, .lr = NAN, .eps = NAN,
             .d = -1, .s = -1, .n = -1, .m = -1, .steps = -1, .seed = -1};
  const cli_opt opts[] = {
      {"snr", CLI_DOUBLE, &f.snr, 0, 1e6, NULL},
      {"d", CLI_INT, &f.d, 2, 1e7, NULL},
      {"s", CLI_INT, &f.s, 1, 1e7, NULL},
      {"n", CLI_INT, &f.n, 1, 1e6, NULL},
      {"sigma-p", CLI_DOUBLE, &f.sigma_p, 1e-300, 1e6, NULL},
      {"m", CLI_INT, &f.m, 1, 4096, NULL},
      {"sigma0", CLI_DOUBLE, &f.sigma0, 0, 1e6, NULL},
      {"steps", CLI_INT, &f.steps, 0, 1e7, NULL},
      {"lr", CLI_DOUBLE, &f.lr, 1e-300, 1e6, NULL},
      {"eps", CLI_DOUBLE, &f.eps, 0, 1, NULL},
      {"optim", CLI_CHOICE, &f.optim, 0, 0, "signgd|adam|gd"},
      {"seed", CLI_INT, &f.seed, 0, 9007199254740992.0, NULL},
      {"random-position", CLI_BOOL, &f.random_position, 0, 0, NULL},
      {"reproduce", CLI_BOOL, &f.reproduce, 0, 0, NULL},
      {"no-plots", CLI_BOOL, &f.no_plots, 0, 0, NULL},
      {"out", CLI_STRING, &f.out, 0, 0, NULL},
  };
  int rc = cli_parse("signgd", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  if (!f.out) {
    fprintf(stderr, "sparq signgd: missing --out DIR\n");
    cli_usage("signgd", false);
    return CLI_USAGE;
  }
  if (f.reproduce && (rc = reproduce_conflict(&f)) != CLI_OK) return rc;
  if (!f.reproduce && f.s >= 0 && f.s >= (f.d >= 0 ? f.d : 2000)) {
    fprintf(stderr, "sparq signgd: --s %lld must be smaller than d\n", (long long)f.s);
    cli_usage("signgd", false);
    return CLI_USAGE;
  }
  if (cli_mkdirs(f.out) != CLI_OK) return CLI_FAIL;
  return f.reproduce ? reproduce(&f) : single_run(&f);
}
