/* sparq plot on an MoE training log (train lm --moe): sparsity and lambda
 * against steps (ReMoE's three stages), and the LM loss below them. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* Whether the log's first step record carries "sparsity" and "lambda". */
bool cli_is_moe_log(const char *path) {
  FILE *in = fopen(path, "rb");
  if (!in) return false;
  char line[4096];
  bool moe = false;
  while (fgets(line, sizeof line, in)) {
    cJSON *o = cJSON_Parse(line);
    if (!o) break;
    const bool step = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "loss"));
    moe = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "sparsity")) &&
          cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "lambda"));
    cJSON_Delete(o);
    if (step) break;
  }
  fclose(in);
  return moe;
}

int cli_plot_moe(const char *log_path, const char *png_path) {
  FILE *in = NULL, *gp = NULL;
  char *script = NULL;
  if (cli_plot_open(log_path, png_path, &in, &script, &gp)) return CLI_FAIL;
  char line[4096];
  int n = 0, lineno = 0, rc = CLI_OK;
  fputs("$moe << EOD\n", gp);
  while (fgets(line, sizeof line, in) && !rc) {
    lineno++;
    cJSON *o = cJSON_Parse(line);
    if (!o) {
      rc = cli_fail("%s:%d: not a JSON object", log_path, lineno);
      break;
    }
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step"), *s = cJSON_GetObjectItemCaseSensitive(o, "sparsity"),
                *l = cJSON_GetObjectItemCaseSensitive(o, "lambda"), *lm = cJSON_GetObjectItemCaseSensitive(o, "loss_lm");
    if (cJSON_IsNumber(step) && cJSON_IsNumber(s) && cJSON_IsNumber(l) && cJSON_IsNumber(lm)) {
      /* lambda 0 (TopK) has no place on a log axis: drawn as missing */
      if (l->valuedouble > 0) fprintf(gp, "%.0f %.6g %.6g %.6g\n", step->valuedouble, s->valuedouble, l->valuedouble, lm->valuedouble);
      else fprintf(gp, "%.0f %.6g NaN %.6g\n", step->valuedouble, s->valuedouble, lm->valuedouble);
      n++;
    }
    cJSON_Delete(o);
  }
  fclose(in);
  fputs("EOD\n", gp);
  if (!rc && n == 0) rc = cli_fail("%s: no MoE step records ({\"step\",\"sparsity\",\"lambda\",\"loss_lm\"})", log_path);
  if (!rc) {
    fputs("set terminal pngcairo size 900,720 noenhanced\nset output ", gp);
    cli_gnuplot_quote(gp, png_path);
    fputs("\nset multiplot layout 2,1 title ", gp);
    cli_gnuplot_quote(gp, log_path);
    fputs("\nset grid\nset key bottom right\nset xlabel 'step'\nset ylabel 'sparsity'\nset yrange [0:1]\n"
          "set y2label 'lambda'\nset logscale y2\nset format y2 '%.0e'\nset y2tics\nset ytics nomirror\n"
          "plot $moe using 1:2 with lines lw 2 lc rgb '#2060c0' title 'sparsity' axes x1y1,\\\n"
          "     $moe using 1:3 with lines lw 1 lc rgb '#c03020' title 'lambda' axes x1y2\n"
          "unset y2label\nunset y2tics\nunset logscale y2\nset format y2\nset autoscale y\nset ylabel 'L_lm (nats/byte)'\n"
          "set key top right\nplot $moe using 1:4 with lines lw 1 lc rgb '#7f9fcf' title 'train L_lm'\n"
          "unset multiplot\n",
          gp);
  }
  if (fclose(gp) != 0 && !rc) rc = cli_fail("%s: write failed", script);
  if (!rc) rc = cli_run_gnuplot(script);
  if (!rc) printf("plot: %s (%d MoE steps: sparsity and lambda, L_lm; script %s)\n", png_path, n, script);
  free(script);
  return rc;
}
