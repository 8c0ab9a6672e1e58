/* sparq plot SWEEP.jsonl: the FD-accuracy curves of `eval fd --json`, one
 * per checkpoint (spec gft.md 8.2 "Report FD-vs-Acc curves"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MAX_CURVES 8
#define LINE_MAX_BYTES 8192

typedef struct sweep_point {
  char model[1024], guidance[8];
  double beta, fd, acc;
} sweep_point;

/* A model point of an `eval fd --json` line; false for the floor line and
 * anything else. */
static bool parse_point(const char *line, sweep_point *p) {
  cJSON *o = cJSON_Parse(line);
  if (!o) return false;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
  const cJSON *guidance = cJSON_GetObjectItemCaseSensitive(o, "guidance");
  const cJSON *beta = cJSON_GetObjectItemCaseSensitive(o, "beta");
  const cJSON *fd = cJSON_GetObjectItemCaseSensitive(o, "fd");
  const cJSON *acc = cJSON_GetObjectItemCaseSensitive(o, "acc");
  const bool ok = cJSON_IsString(model) && cJSON_IsString(guidance) && cJSON_IsNumber(beta) && cJSON_IsNumber(fd) &&
                  cJSON_IsNumber(acc);
  if (ok) {
    snprintf(p->model, sizeof p->model, "%s", model->valuestring);
    snprintf(p->guidance, sizeof p->guidance, "%s", guidance->valuestring);
    p->beta = beta->valuedouble, p->fd = fd->valuedouble, p->acc = acc->valuedouble;
  }
  cJSON_Delete(o);
  return ok;
}

bool cli_is_fd_sweep(const char *path) {
  FILE *in = fopen(path, "rb");
  if (!in) return false;
  char line[LINE_MAX_BYTES];
  sweep_point p;
  bool found = false;
  for (int i = 0; i < 4 && !found && fgets(line, sizeof line, in); i++) found = parse_point(line, &p);
  fclose(in);
  return found;
}

/* The gnuplot script: one inline data block per checkpoint (acc, FD, beta),
 * in file order, then one curve with beta labels per block. */
static int write_script(FILE *in, FILE *gp, const char *sweep_path, const char *png_path, int *points) {
  char names[MAX_CURVES][1024], kinds[MAX_CURVES][8];
  char *blocks[MAX_CURVES] = {0};
  size_t lens[MAX_CURVES] = {0};
  int ncurves = 0, rc = CLI_OK;
  char line[LINE_MAX_BYTES];
  sweep_point p;
  *points = 0;
  while (!rc && fgets(line, sizeof line, in)) {
    if (!parse_point(line, &p)) continue;
    int k = 0;
    while (k < ncurves && strcmp(names[k], p.model)) k++;
    if (k == ncurves) {
      if (ncurves == MAX_CURVES) {
        rc = cli_fail("%s: more than %d checkpoints", sweep_path, MAX_CURVES);
        break;
      }
      snprintf(names[k], sizeof names[k], "%s", p.model);
      snprintf(kinds[k], sizeof kinds[k], "%s", p.guidance);
      ncurves++;
    }
    char row[128];
    const int n = snprintf(row, sizeof row, "%.6g %.6g %.3g\n", 100.0 * p.acc, p.fd, p.beta);
    char *grown = realloc(blocks[k], lens[k] + (size_t)n + 1);
    if (!grown) {
      rc = cli_fail("out of memory");
      break;
    }
    memcpy(grown + lens[k], row, (size_t)n + 1);
    blocks[k] = grown, lens[k] += (size_t)n;
    (*points)++;
  }
  if (!rc && *points == 0) rc = cli_fail("%s: no `eval fd --json` model rows", sweep_path);
  if (!rc) {
    for (int k = 0; k < ncurves; k++) fprintf(gp, "$m%d << EOD\n%sEOD\n", k, blocks[k]);
    fputs("set terminal pngcairo size 900,600 noenhanced\nset output ", gp);
    cli_gnuplot_quote(gp, png_path);
    fputs("\nset title ", gp);
    cli_gnuplot_quote(gp, sweep_path);
    fputs("\nset xlabel 'class accuracy of the samples (%)'\nset ylabel 'FD (classifier features)'\nset grid\n"
          "set key top left\nplot ",
          gp);
    static const char *colors[MAX_CURVES] = {"#c03020", "#2060c0", "#30a040", "#a040a0",
                                             "#d08000", "#208080", "#606060", "#000000"};
    for (int k = 0; k < ncurves; k++) {
      char title[1100];
      snprintf(title, sizeof title, "%s (%s)", names[k], kinds[k]);
      fprintf(gp, "%s$m%d using 1:2 with linespoints lw 2 pt 7 lc rgb '%s' title ", k ? ", \\\n     " : "", k,
              colors[k]);
      cli_gnuplot_quote(gp, title);
      fprintf(gp, ", $m%d using 1:2:(sprintf('%%.2g', $3)) with labels offset 0,1 tc rgb '%s' notitle", k,
              colors[k]);
    }
    fputc('\n', gp);
  }
  for (int k = 0; k < MAX_CURVES; k++) free(blocks[k]);
  return rc;
}

int cli_plot_fd(const char *sweep_path, const char *png_path) {
  FILE *in = NULL, *gp = NULL;
  char *script = NULL;
  if (cli_plot_open(sweep_path, png_path, &in, &script, &gp)) return CLI_FAIL;
  int points = 0;
  int rc = write_script(in, gp, sweep_path, png_path, &points);
  if (fclose(gp) != 0 && !rc) rc = cli_fail("%s: write failed", script);
  fclose(in);
  if (!rc) rc = cli_run_gnuplot(script);
  if (!rc) printf("plot: %s (FD against accuracy, %d points; script %s)\n", png_path, points, script);
  free(script);
  return rc;
}
