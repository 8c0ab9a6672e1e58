/* sparq prune: one weight matrix to the packed V:N:M format (score, optional
 * channel permutation, mask, pack, save), printing the retained-score ratio
 * and what the permutation gained. --pattern auto picks V and M by the
 * two-phase rule of spec §3 from speedups measured here and now. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"
#include "sparq/vnm.h"

/* The (V, M) grid of spec §3 for --pattern auto. */
static const int auto_v[] = {16, 32, 64, 128};
static const int auto_m[] = {5, 6, 7, 8};

int cli_load_matrix(const char *path, const char *tensor, float **out, int64_t shape[2], char *name,
                    size_t name_size) {
  *out = NULL;
  sparq_file_format fmt;
  if (sparq_detect_file_format(path, &fmt) != SPARQ_OK) return cli_fail_last_error();
  sparq_tensor owned = {0};
  const sparq_tensor *t = NULL;
  sparq_safetensors *st = NULL;
  int rc = CLI_OK;
  if (fmt == SPARQ_FORMAT_NPY) {
    if (tensor) return cli_fail("%s: --tensor names a safetensors tensor, but this is a .npy file", path);
    if (sparq_npy_read(path, &owned) != SPARQ_OK) return cli_fail_last_error();
    t = &owned;
    if (name) snprintf(name, name_size, "weight");
  } else if (fmt == SPARQ_FORMAT_SAFETENSORS) {
    if (sparq_safetensors_open(path, &st) != SPARQ_OK) return cli_fail_last_error();
    if (tensor) {
      if (sparq_safetensors_get(st, tensor, &t) != SPARQ_OK) {
        rc = cli_fail_last_error();
        goto done;
      }
    } else {
      size_t count = 0;
      for (size_t i = 0; i < st->count; i++)
        if (st->tensors[i].ndim == 2 && count++ == 0) t = &st->tensors[i], tensor = st->names[i];
      if (count != 1) {
        rc = cli_fail("%s: %zu two-dimensional tensors; name one with --tensor", path, count);
        goto done;
      }
    }
    if (name) snprintf(name, name_size, "%s", tensor);
  } else {
    return cli_fail("%s: not a safetensors or .npy file", path);
  }
  if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1) {
    rc = cli_fail("%s: expected a non-empty 2-D matrix, got %d dimensions", path, t->ndim);
    goto done;
  }
  size_t n = (size_t)t->shape[0] * (size_t)t->shape[1];
  *out = sparq_alloc(n * sizeof(float), path);
  if (!*out || sparq_tensor_to_f32(t, *out) != SPARQ_OK) {
    sparq_free(*out);
    *out = NULL;
    rc = cli_fail_last_error();
    goto done;
  }
  shape[0] = t->shape[0];
  shape[1] = t->shape[1];
done:
  sparq_tensor_free(&owned);
  sparq_safetensors_close(st);
  return rc;
}

/* Measures every (V, M) of the grid on this layer's shape and applies the
 * two-phase rule; prints the table it decided on. */
static int choose_pattern(int64_t rows, int64_t cols, int64_t tokens, double target, sparq_vnm_pattern *out) {
  enum { NV = sizeof auto_v / sizeof auto_v[0], NM = sizeof auto_m / sizeof auto_m[0] };
  sparq_vnm_candidate c[NV * NM];
  printf("choosing V:2:M for %lld x %lld at %lld tokens, target speedup %.2fx (%d threads):\n", (long long)rows,
         (long long)cols, (long long)tokens, target, sparq_threads());
  printf("  pattern    ln K    speedup\n");
  int n = 0;
  for (int i = 0; i < NV; i++)
    for (int j = 0; j < NM; j++) {
      sparq_vnm_pattern p = {auto_v[i], 2, auto_m[j]};
      cli_vnm_timing t;
      int rc = cli_bench_vnm_row(rows, cols, tokens, p, 3, &t);
      if (rc != CLI_OK) return rc;
      c[n++] = (sparq_vnm_candidate){p, t.speedup};
      char text[32];
      sparq_vnm_pattern_format(p, text, sizeof text);
      printf("  %-9s %6.3f   %6.2fx\n", text, sparq_vnm_log_diversity(p), t.speedup);
    }
  size_t best;
  if (sparq_vnm_choose(c, (size_t)n, target, &best) != SPARQ_OK) return cli_fail_last_error();
  *out = c[best].pattern;
  return CLI_OK;
}

static int usage_error(const char *what) {
  fprintf(stderr, "sparq prune: %s\n", what);
  cli_usage("prune", false);
  return CLI_USAGE;
}

int cli_prune(int argc, char **argv) {
  const char *in = NULL, *tensor = NULL, *pattern = NULL, *score = "abs", *calib = NULL, *select = "joint";
  const char *out = NULL, *name = NULL;
  bool permute = false;
  double power = 0.5, target = 1.5;
  int64_t seed = 0, tokens = 256, tries = 0;
  const cli_opt opts[] = {
      {"in", CLI_STRING, &in, 0, 0, NULL},
      {"tensor", CLI_STRING, &tensor, 0, 0, NULL},
      {"pattern", CLI_STRING, &pattern, 0, 0, NULL},
      {"score", CLI_CHOICE, &score, 0, 0, "abs|ria"},
      {"calib", CLI_STRING, &calib, 0, 0, NULL},
      {"power", CLI_DOUBLE, &power, 0, 4, NULL},
      {"select", CLI_CHOICE, &select, 0, 0, "joint|twostep"},
      {"permute", CLI_BOOL, &permute, 0, 0, NULL},
      {"permute-tries", CLI_INT, &tries, 1, 1e9, NULL},
      {"seed", CLI_INT, &seed, 0, 1e15, NULL},
      {"speedup", CLI_DOUBLE, &target, 0, 1000, NULL},
      {"tokens", CLI_INT, &tokens, 1, 65536, NULL},
      {"out", CLI_STRING, &out, 0, 0, NULL},
      {"name", CLI_STRING, &name, 0, 0, NULL},
  };
  int rc = cli_parse("prune", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  if (!in) return usage_error("missing --in");
  if (!pattern) return usage_error("missing --pattern");
  if (!out) return usage_error("missing --out");
  bool ria = !strcmp(score, "ria");
  if (ria && !calib) return usage_error("--score ria needs --calib X (tokens x in-features activations)");
  if (!ria && calib) return usage_error("--calib is only used by --score ria");
  sparq_vnm_prune_opts po = {.select = strcmp(select, "joint") ? SPARQ_VNM_SELECT_TWOSTEP : SPARQ_VNM_SELECT_JOINT,
                             .permute = permute,
                             .permute_opts = {.col_tries = tries, .row_tries = tries, .seed = (uint64_t)seed}};
  bool automatic = !strcmp(pattern, "auto");
  if (!automatic && sparq_vnm_pattern_parse(pattern, &po.pattern) != SPARQ_OK) return usage_error(sparq_last_error());

  float *w = NULL, *x = NULL, *s = NULL;
  sparq_vnm_matrix *m = NULL;
  int64_t shape[2], xshape[2];
  char layer[256];
  if ((rc = cli_load_matrix(in, tensor, &w, shape, layer, sizeof layer)) != CLI_OK) goto done;
  if (name) snprintf(layer, sizeof layer, "%s", name);
  if (automatic && (rc = choose_pattern(shape[0], shape[1], tokens, target, &po.pattern)) != CLI_OK) goto done;
  s = sparq_alloc((size_t)(shape[0] * shape[1]) * sizeof(float), "prune scores");
  if (!s) {
    rc = cli_fail_last_error();
    goto done;
  }
  if (ria) {
    if ((rc = cli_load_matrix(calib, NULL, &x, xshape, NULL, 0)) != CLI_OK) goto done;
    if (xshape[1] != shape[1]) {
      rc = cli_fail("%s: calibration activations have %lld features, the weights %lld input features", calib,
                    (long long)xshape[1], (long long)shape[1]);
      goto done;
    }
    float *norms = sparq_alloc((size_t)shape[1] * sizeof(float), "prune norms");
    sparq_status st = norms ? sparq_vnm_column_norms(x, xshape[0], xshape[1], xshape[1], norms) : SPARQ_ERR_NOMEM;
    if (st == SPARQ_OK) st = sparq_vnm_score_ria(w, shape[0], shape[1], norms, power, s);
    sparq_free(norms);
    if (st != SPARQ_OK) {
      rc = cli_fail_last_error();
      goto done;
    }
  } else {
    sparq_vnm_score_abs(w, shape[0], shape[1], s);
  }
  sparq_vnm_prune_report rep;
  double t0 = sparq_now();
  if (sparq_vnm_prune(w, shape[0], shape[1], s, &po, &m, &rep) != SPARQ_OK ||
      sparq_vnm_save(out, layer, m) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  char text[32];
  sparq_vnm_pattern_format(po.pattern, text, sizeof text);
  double total = rep.total > 0 ? rep.total : 1;
  printf("%s: '%s' [%lld x %lld] pruned to %s (density %.1f%%), %s scores, %s selection\n", in, layer,
         (long long)shape[0], (long long)shape[1], text, 200.0 / po.pattern.m, ria ? "RIA" : "ABS", select);
  printf("  retained score ratio %.4f", rep.retained / total);
  if (permute)
    printf(" (without permutation %.4f, gain %+.4f = %+.2f%%, search %.2f s)", rep.retained_plain / total,
           (rep.retained - rep.retained_plain) / total,
           rep.retained_plain > 0 ? 100.0 * (rep.retained / rep.retained_plain - 1) : 0.0, rep.seconds_permute);
  printf("\n  wrote %s in %.2f s\n", out, sparq_now() - t0);
done:
  sparq_vnm_free(m);
  sparq_free(w);
  sparq_free(x);
  sparq_free(s);
  return rc;
}

int cli_demo_vnm(const char *dir, FILE *jsonl) {
  enum { R = 768, C = 768, T = 256 };
  const sparq_vnm_pattern p = {64, 2, 8};
  char path[4096];
  if (snprintf(path, sizeof path, "%s/vnm-layer-64-2-8.safetensors", dir) >= (int)sizeof path)
    return cli_fail("%s: output directory path too long", dir);
  float *w = sparq_alloc((size_t)R * C * sizeof(float), "demo W"), *x = sparq_alloc((size_t)T * C * sizeof(float), "demo X");
  float *s = sparq_alloc((size_t)R * C * sizeof(float), "demo scores"), *norms = sparq_alloc(C * sizeof(float), "demo norms");
  float *y = sparq_alloc((size_t)T * R * sizeof(float), "demo Y"), *wd = sparq_alloc((size_t)R * C * sizeof(float), "demo W");
  float *yd = sparq_alloc((size_t)T * R * sizeof(float), "demo Y");
  sparq_vnm_matrix *m = NULL;
  int rc = CLI_OK;
  if (!w || !x || !s || !norms || !y || !wd || !yd) {
    rc = cli_fail_last_error();
    goto done;
  }
  /* activations with uneven channel scales, as in trained models, so RIA has something to see */
  sparq_rng rng = sparq_rng_make(2024, 0);
  sparq_rng_fill_normal(&rng, w, (size_t)R * C, 0, 0.02f);
  sparq_rng_fill_normal(&rng, x, (size_t)T * C, 0, 1);
  for (int j = 0; j < C; j++) {
    float scale = expf(sparq_rng_normal(&rng));
    for (int t = 0; t < T; t++) x[t * C + j] *= scale;
  }
  sparq_vnm_prune_opts po = {.pattern = p, .select = SPARQ_VNM_SELECT_JOINT, .permute = true};
  sparq_vnm_prune_report rep;
  if (sparq_vnm_column_norms(x, T, C, C, norms) != SPARQ_OK || sparq_vnm_score_ria(w, R, C, norms, 0.5, s) != SPARQ_OK ||
      sparq_vnm_prune(w, R, C, s, &po, &m, &rep) != SPARQ_OK || sparq_vnm_save(path, "layer", m) != SPARQ_OK ||
      sparq_vnm_gemm(m, T, x, C, y, R) != SPARQ_OK || sparq_vnm_unpack(m, wd, C) != SPARQ_OK ||
      sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, T, R, C, 1, x, C, wd, C, 0, yd, R) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  double diff = 0, big = 0;
  for (size_t i = 0; i < (size_t)T * R; i++) {
    diff = fmax(diff, fabs((double)y[i] - (double)yd[i]));
    big = fmax(big, fabs((double)yd[i]));
  }
  printf("  RIA scores, joint selection, channel permutation (%.1f s): retained score ratio %.4f "
         "(%.4f without permutation)\n", rep.seconds_permute, rep.retained / rep.total, rep.retained_plain / rep.total);
  printf("  wrote %s; sparse GEMM vs sgemm on the unpacked layer: max |diff| %.2g (max |y| %.2g)\n", path, diff, big);
  cli_vnm_timing t;
  if ((rc = cli_bench_vnm_row(R, C, T, p, 7, &t)) != CLI_OK) goto done;
  cli_bench_vnm_header(stdout, 7);
  cli_bench_vnm_print(stdout, false, R, C, T, p, &t);
  if (jsonl) cli_bench_vnm_print(jsonl, true, R, C, T, p, &t);
done:
  sparq_vnm_free(m);
  sparq_free(w), sparq_free(x), sparq_free(s), sparq_free(norms), sparq_free(y), sparq_free(wd), sparq_free(yd);
  return rc;
}
