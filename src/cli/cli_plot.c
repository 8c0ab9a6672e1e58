/* sparq plot: the loss curve of a training log (log.jsonl) through gnuplot;
 * `eval fd --json` sweeps go to cli_plot_fd, MoE training logs to
 * cli_plot_moe. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

extern char **environ;

void cli_gnuplot_quote(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    fputc(*s, f);
  }
  fputc('\'', f);
}

/* Copies the (step, loss) and (step, eval_loss) records as two inline data blocks. */
static int write_data(FILE *in, FILE *gp, const char *log_path, int *n_train, int *n_eval) {
  char line[4096];
  fputs("$train << EOD\n", gp);
  char *evals = NULL;
  size_t evals_len = 0, evals_cap = 0;
  int lineno = 0;
  *n_train = *n_eval = 0;
  while (fgets(line, sizeof line, in)) {
    lineno++;
    cJSON *o = cJSON_Parse(line);
    if (!o) {
      free(evals);
      return cli_fail("%s:%d: not a JSON object", log_path, lineno);
    }
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "eval_loss");
    if (cJSON_IsNumber(step) && cJSON_IsNumber(loss)) {
      fprintf(gp, "%.0f %.6g\n", step->valuedouble, loss->valuedouble);
      (*n_train)++;
    } else if (cJSON_IsNumber(step) && cJSON_IsNumber(ev)) {
      char buf[64];
      int n = snprintf(buf, sizeof buf, "%.0f %.6g\n", step->valuedouble, ev->valuedouble);
      if (evals_len + (size_t)n + 1 > evals_cap) {
        size_t cap = evals_cap ? 2 * evals_cap : 4096;
        char *grown = realloc(evals, cap);
        if (!grown) {
          cJSON_Delete(o);
          free(evals);
          return cli_fail("out of memory");
        }
        evals = grown;
        evals_cap = cap;
      }
      memcpy(evals + evals_len, buf, (size_t)n + 1);
      evals_len += (size_t)n;
      (*n_eval)++;
    }
    cJSON_Delete(o);
  }
  fputs("EOD\n$eval << EOD\n", gp);
  if (evals) fputs(evals, gp);
  fputs("EOD\n", gp);
  free(evals);
  return CLI_OK;
}

int cli_run_gnuplot(const char *script) {
  char *argv[] = {"gnuplot", (char *)script, NULL};
  pid_t pid;
  int sr = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
  if (sr == ENOENT)
    return cli_fail("gnuplot not found: install the Debian package gnuplot-nox, then run: gnuplot %s", script);
  if (sr != 0) return cli_fail("gnuplot: cannot start: %s", strerror(sr));
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return cli_fail("%s: gnuplot failed", script);
  return CLI_OK;
}

int cli_plot_open(const char *data_path, const char *png_path, FILE **in, char **script, FILE **gp) {
  const size_t n = strlen(png_path) + 4;
  *gp = NULL, *script = NULL;
  if (!(*in = fopen(data_path, "rb"))) return cli_fail("%s: %s", data_path, strerror(errno));
  int rc = CLI_OK;
  if (!(*script = malloc(n))) {
    rc = cli_fail("out of memory");
  } else {
    snprintf(*script, n, "%s.gp", png_path);
    if ((*gp = fopen(*script, "wb"))) return CLI_OK;
    rc = cli_fail("%s: %s", *script, strerror(errno));
  }
  free(*script);
  *script = NULL;
  fclose(*in);
  *in = NULL;
  return rc;
}

int cli_plot_log(const char *log_path, const char *png_path) {
  FILE *in = NULL, *gp = NULL;
  char *script = NULL;
  if (cli_plot_open(log_path, png_path, &in, &script, &gp)) return CLI_FAIL;
  int n_train = 0, n_eval = 0;
  int rc = write_data(in, gp, log_path, &n_train, &n_eval);
  fclose(in);
  if (!rc && n_train == 0) rc = cli_fail("%s: no training records ({\"step\":..,\"loss\":..})", log_path);
  if (!rc) {
    fputs("set terminal pngcairo size 900,540 noenhanced\nset output ", gp);
    cli_gnuplot_quote(gp, png_path);
    fputs("\nset title ", gp);
    cli_gnuplot_quote(gp, log_path);
    fputs("\nset xlabel 'step'\nset ylabel 'loss (nats/token)'\nset grid\nset key top right\n"
          "plot $train using 1:2 with lines lw 1 lc rgb '#7f9fcf' title 'train',\\\n", gp);
    fprintf(gp, "     $eval using 1:2 with linespoints lw 2 pt 7 lc rgb '#c03020' title 'held-out'%s\n",
            n_eval ? "" : " # (no evaluations)");
  }
  if (fclose(gp) != 0 && !rc) rc = cli_fail("%s: write failed", script);
  if (rc) {
    free(script);
    return rc;
  }
  rc = cli_run_gnuplot(script);
  if (!rc) printf("plot: %s (%d steps, %d evaluations; script %s)\n", png_path, n_train, n_eval, script);
  free(script);
  return rc;
}

int cli_plot(int argc, char **argv) {
  const char *out = NULL;
  const char *pos[1];
  int npos = 0;
  const cli_opt opts[] = {{"out", CLI_STRING, &out, 0, 0, NULL}};
  int rc = cli_parse("plot", argc, argv, 1, opts, 1, pos, 1, &npos);
  if (rc) return rc;
  if (npos != 1 || !out) {
    fprintf(stderr, "sparq plot: needs LOG.jsonl and --out PNG\n");
    cli_usage("plot", false);
    return CLI_USAGE;
  }
  if (cli_is_moe_log(pos[0])) return cli_plot_moe(pos[0], out);
  return cli_is_fd_sweep(pos[0]) ? cli_plot_fd(pos[0], out) : cli_plot_log(pos[0], out);
}
