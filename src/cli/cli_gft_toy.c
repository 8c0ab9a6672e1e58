/* sparq gft-toy: the 2-D toy arms of spec gft.md 8.1 in one command. Trains
 * (or reuses) arm A (CFG), B (GFT from scratch) and C (GFT fine-tuned from
 * A), samples them and the exact-CFG reference from one shared noise over
 * the beta sweep, prints the table of the exact metrics and the acceptance
 * verdicts of issue #8 (eps error of GFT at beta 0.5 against CFG at w 2)
 * and of spec 9.9 (toy convergence). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/gft_toy.h"
#include "sparq/sparq.h"

static const float kBetas[] = {1.0f, 0.67f, 0.5f, 0.33f, 0.25f};
#define N_BETAS ((int)(sizeof kBetas / sizeof kBetas[0]))
#define BETA_VERDICT 2 /* beta 0.5 = w 2 */
#define RATIO_LIMIT 1.2
#define CONVERGENCE_LIMIT 0.05 /* spec 9.9, of E||eps_w*||^2 */

enum { ARM_A, ARM_B, ARM_C, ARM_REF, N_ROWS_ARMS };
static const char *const kArmLabel[N_ROWS_ARMS] = {"A CFG", "B GFT", "C GFT-ft", "Ref"};
static const char *const kArmKey[N_ROWS_ARMS] = {"A", "B", "C", "Ref"};
static const char *const kArmMethod[N_ROWS_ARMS] = {"cfg", "gft", "gft-finetune", "exact-cfg"};
static const char *const kArmDir[3] = {"A-cfg", "B-gft", "C-gft-finetune"};

typedef struct flags {
  const char *out, *csv;
  int64_t steps, finetune_steps, n, seed;
  bool json;
} flags;

typedef struct study {
  sparq_toy2d toy;
  sparq_diffusion diff;
  sparq_toy_mlp *model[3];
  sparq_gft_toy_train_result train[3];
  sparq_gft_toy_row rows[N_ROWS_ARMS][N_BETAS];
  FILE *info; /* stdout, or stderr under --json so stdout stays JSON */
} study;

static int train_arms(const flags *f, study *st) {
  const int64_t steps[3] = {f->steps, f->steps, f->finetune_steps};
  for (int a = 0; a < 3; a++) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", f->out, kArmDir[a]);
    sparq_gft_toy_train_config tc = sparq_gft_toy_train_config_default();
    tc.arm = (sparq_gft_toy_arm)a;
    tc.steps = steps[a];
    tc.seed = (uint64_t)f->seed;
    tc.out_dir = dir;
    if (a == ARM_C) tc.init = st->model[ARM_A], tc.init_signature = st->train[ARM_A].signature;
    static const char *const what[3] = {"CFG, label dropout 0.1", "GFT from scratch",
                                        "GFT fine-tuned from A's EMA weights, beta projection zero"};
    fprintf(st->info, "arm %s (%s): %" PRId64 " steps, seed %" PRId64 ", %s\n", kArmKey[a], what[a], steps[a],
            f->seed, dir);
    fflush(st->info);
    sparq_gft_toy_train_result *r = &st->train[a];
    if (sparq_gft_toy_train_arm(&st->toy, &st->diff, &tc, &st->model[a], r)) return cli_fail_last_error();
    if (r->note[0]) fprintf(st->info, "  note: %s\n", r->note);
    if (r->reused)
      fprintf(st->info, "  reused the finished run (%s/ema.safetensors): nothing trained\n", dir);
    else
      fprintf(st->info, "  trained in %.1f s (%.0f steps/s): train loss %.4f, held-out loss %.4f\n",
              r->train.seconds, r->train.seconds > 0 ? (double)steps[a] / r->train.seconds : 0.0,
              (double)r->train.last_loss, (double)r->train.last_eval);
  }
  return CLI_OK;
}

static int evaluate(const flags *f, study *st) {
  sparq_gft_toy_eval_config ec = sparq_gft_toy_eval_config_default();
  ec.n_per_class = f->n;
  ec.seed = (uint64_t)f->seed;
  const int64_t rows = sparq_gft_toy_eval_rows(&ec);
  float *ref = sparq_alloc((size_t)(2 * rows) * sizeof *ref, "reference samples");
  if (!ref) return cli_fail_last_error();
  fprintf(st->info,
          "evaluation: beta in {1, .67, .5, .33, .25}, %" PRId64 " samples per class (%d classes), DDIM %" PRId64
          " steps, exact-CFG reference DDIM %" PRId64 ", the same noise for every arm; EMA weights\n",
          f->n, SPARQ_TOY2D_CLASSES, ec.steps, ec.ref_steps);
  fflush(st->info);
  int rc = CLI_OK;
  for (int b = 0; b < N_BETAS && !rc; b++) {
    const double t0 = sparq_now();
    if (sparq_gft_toy_reference(&st->toy, &st->diff, &ec, kBetas[b], ref, &st->rows[ARM_REF][b])) {
      rc = cli_fail_last_error();
      break;
    }
    for (int a = 0; a < 3 && !rc; a++) {
      sparq_denoiser net;
      sparq_toy_mlp_denoiser(st->model[a], &net);
      if (sparq_gft_toy_eval_arm(&st->toy, &st->diff, &net, a != ARM_A, &ec, kBetas[b], ref, &st->rows[a][b],
                                 NULL))
        rc = cli_fail_last_error();
    }
    if (!rc) fprintf(stderr, "eval beta %.2f: %.1f s\n", (double)kBetas[b], sparq_now() - t0);
  }
  sparq_free(ref);
  return rc;
}

/* A NaN (no reference) prints as "-" in the table, null in JSON, empty in CSV. */
static void cell(FILE *o, const char *fmt, int width, double v) {
  if (isnan(v)) fprintf(o, " %*s", width, "-");
  else fprintf(o, fmt, v);
}

static void print_table(const study *st) {
  printf("\n%-9s %5s %5s %11s %10s %9s %9s %7s %9s %6s %5s %8s\n", "arm", "beta", "w", "eps-error",
         "/E|eps*|^2", "pair-dist", "log p", "Bayes", "energy", "modes", "NFE", "seconds");
  for (int a = 0; a < N_ROWS_ARMS; a++)
    for (int b = 0; b < N_BETAS; b++) {
      const sparq_gft_toy_row *r = &st->rows[a][b];
      char modes[16];
      snprintf(modes, sizeof modes, "%d/%d", r->m.modes_covered, r->m.modes);
      printf("%-9s %5.2f %5.2f %11.6f %10.5f", kArmLabel[a], (double)r->beta, (double)r->w, r->eps.err,
             r->eps.err / r->eps.ref_sq);
      cell(stdout, " %9.4f", 9, r->m.endpoint_dist);
      printf(" %9.4f %7.4f", r->m.log_density, r->m.bayes_acc);
      cell(stdout, " %9.6f", 9, r->m.energy_dist);
      printf(" %6s %5" PRId64 " %8.2f\n", modes, r->m.nfe, r->m.seconds);
    }
}

/* beta and w are floats: 6 digits print 0.67 rather than 0.670000017 */
static void json_short(FILE *o, const char *key, double v) { fprintf(o, ",\"%s\":%.6g", key, v); }

static void json_num(FILE *o, const char *key, double v) {
  if (isfinite(v)) fprintf(o, ",\"%s\":%.9g", key, v);
  else fprintf(o, ",\"%s\":null", key);
}

static void print_row_json(FILE *o, const study *st, int a, const sparq_gft_toy_row *r) {
  fprintf(o, "{\"arm\":\"%s\",\"method\":\"%s\"", kArmKey[a], kArmMethod[a]);
  json_short(o, "beta", r->beta);
  json_short(o, "w", r->w);
  fprintf(o, ",\"n\":%" PRId64, r->m.n);
  json_num(o, "eps_error", r->eps.err);
  json_num(o, "eps_ref_sq", r->eps.ref_sq);
  json_num(o, "endpoint_dist", r->m.endpoint_dist);
  json_num(o, "log_density", r->m.log_density);
  json_num(o, "bayes_acc", r->m.bayes_acc);
  json_num(o, "energy_dist", r->m.energy_dist);
  json_num(o, "mode_coverage", r->m.mode_coverage);
  fprintf(o, ",\"modes_covered\":%d,\"modes\":%d,\"nfe\":%" PRId64, r->m.modes_covered, r->m.modes, r->m.nfe);
  json_num(o, "seconds", r->m.seconds);
  if (a != ARM_REF) {
    /* the arm's training, repeated on each of its rows */
    json_num(o, "train_seconds", st->train[a].train.seconds);
    fprintf(o, ",\"reused\":%s", st->train[a].reused ? "true" : "false");
  }
  fprintf(o, "}\n");
}

static void csv_num(FILE *o, double v) {
  if (isfinite(v)) fprintf(o, ",%.9g", v);
  else fputc(',', o);
}

/* o was opened before the training, so a bad path fails in seconds, not after it. */
static int write_csv(FILE *o, const char *path, const study *st) {
  fprintf(o, "arm,method,beta,w,n,eps_error,eps_ref_sq,endpoint_dist,log_density,bayes_acc,energy_dist,"
             "mode_coverage,modes_covered,modes,nfe,seconds\n");
  for (int a = 0; a < N_ROWS_ARMS; a++)
    for (int b = 0; b < N_BETAS; b++) {
      const sparq_gft_toy_row *r = &st->rows[a][b];
      fprintf(o, "%s,%s", kArmKey[a], kArmMethod[a]);
      fprintf(o, ",%.6g,%.6g", (double)r->beta, (double)r->w);
      fprintf(o, ",%" PRId64, r->m.n);
      const double v[] = {r->eps.err, r->eps.ref_sq, r->m.endpoint_dist, r->m.log_density, r->m.bayes_acc,
                          r->m.energy_dist, r->m.mode_coverage};
      for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) csv_num(o, v[i]);
      fprintf(o, ",%d,%d,%" PRId64, r->m.modes_covered, r->m.modes, r->m.nfe);
      csv_num(o, r->m.seconds);
      fputc('\n', o);
    }
  const bool ok = !ferror(o);
  if (fclose(o) != 0 || !ok) return cli_fail("%s: write failed", path);
  return CLI_OK;
}

static void verdicts(const flags *f, const study *st) {
  const sparq_gft_toy_row *cfg = &st->rows[ARM_A][BETA_VERDICT];
  for (int a = ARM_B; a <= ARM_C; a++) {
    const sparq_gft_toy_row *g = &st->rows[a][BETA_VERDICT];
    const double ratio = g->eps.err / cfg->eps.err;
    const bool pass = ratio <= RATIO_LIMIT;
    if (f->json)
      printf("{\"check\":\"eps_ratio\",\"arm\":\"%s\",\"beta\":0.5,\"eps_error\":%.9g,\"cfg_eps_error\":%.9g,"
             "\"ratio\":%.9g,\"limit\":%g,\"pass\":%s}\n",
             kArmKey[a], g->eps.err, cfg->eps.err, ratio, RATIO_LIMIT, pass ? "true" : "false");
    else
      printf("eps-error: GFT(%s) at beta 0.5 = %.6f, CFG(A) at w 2 = %.6f, ratio %.3f (limit %.1f): %s\n",
             kArmKey[a], g->eps.err, cfg->eps.err, ratio, RATIO_LIMIT, pass ? "pass" : "FAIL");
  }
  const sparq_gft_toy_row *b = &st->rows[ARM_B][BETA_VERDICT];
  const double rel = b->eps.err / b->eps.ref_sq;
  const bool pass = rel < CONVERGENCE_LIMIT;
  if (f->json)
    printf("{\"check\":\"convergence\",\"arm\":\"B\",\"beta\":0.5,\"steps\":%" PRId64 ",\"eps_error\":%.9g,"
           "\"eps_ref_sq\":%.9g,\"ratio\":%.9g,\"limit\":%g,\"pass\":%s}\n",
           f->steps, b->eps.err, b->eps.ref_sq, rel, CONVERGENCE_LIMIT, pass ? "true" : "false");
  else
    printf("toy convergence (spec 9.9, %" PRId64 " steps; the spec's figure is for 20000): eps-error of B at "
           "beta 0.5 = %.6f = %.4f x E||eps_w*||^2 (limit %.2f): %s\n",
           f->steps, b->eps.err, rel, CONVERGENCE_LIMIT, pass ? "pass" : "FAIL");
}

int cli_gft_toy(int argc, char **argv) {
  flags f = {.steps = 20000, .finetune_steps = 0, .n = 10000, .seed = 0};
  const cli_opt opts[] = {
      {"out", CLI_STRING, &f.out, 0, 0, NULL},
      {"steps", CLI_INT, &f.steps, 10, 1e8, NULL},
      {"finetune-steps", CLI_INT, &f.finetune_steps, 1, 1e8, NULL},
      {"n", CLI_INT, &f.n, 1, 1 << 22, NULL},
      {"seed", CLI_INT, &f.seed, 0, 9007199254740992.0, NULL},
      {"csv", CLI_STRING, &f.csv, 0, 0, NULL},
      {"json", CLI_BOOL, &f.json, 0, 0, NULL},
  };
  int rc = cli_parse("gft-toy", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  if (!f.out) return cli_usage_error("gft-toy", "--out DIR is required");
  if (!f.finetune_steps) f.finetune_steps = f.steps / 10; /* spec 8.1: 10% of A's steps */
  if (cli_mkdirs(f.out) != CLI_OK) return CLI_FAIL;
  FILE *csv = NULL;
  if (f.csv && !(csv = fopen(f.csv, "w"))) return cli_fail("%s: cannot open for writing: %s", f.csv, strerror(errno));

  study st;
  memset(&st, 0, sizeof st);
  st.info = f.json ? stderr : stdout;
  sparq_toy2d_default(&st.toy);
  if (sparq_diffusion_init(&st.diff, SPARQ_DIFF_VP, SPARQ_PRED_EPS)) {
    if (csv) fclose(csv);
    return cli_fail_last_error();
  }
  fprintf(st.info,
          "gft-toy: %d classes, %d components; MLP 3 x 128 SiLU, vp eps, Adam 1e-3, batch 512, EMA 0.999\n",
          SPARQ_TOY2D_CLASSES, st.toy.ncomp);
  rc = train_arms(&f, &st);
  if (!rc) rc = evaluate(&f, &st);
  if (!rc) {
    if (f.json)
      for (int a = 0; a < N_ROWS_ARMS; a++)
        for (int b = 0; b < N_BETAS; b++) print_row_json(stdout, &st, a, &st.rows[a][b]);
    else
      print_table(&st);
    if (!f.json) {
      printf("training wall time:");
      for (int a = 0; a < 3; a++) {
        if (st.train[a].reused) printf(" %s reused", kArmKey[a]);
        else printf(" %s %.1f s", kArmKey[a], st.train[a].train.seconds);
        printf(a < 2 ? "," : "\n");
      }
    }
    verdicts(&f, &st);
    if (csv) {
      rc = write_csv(csv, f.csv, &st);
      csv = NULL;
      if (!rc && !f.json) printf("table: %s\n", f.csv);
    }
  }
  if (csv) fclose(csv);
  for (int a = 0; a < 3; a++) sparq_toy_mlp_free(st.model[a]);
  sparq_diffusion_free(&st.diff);
  return rc;
}
