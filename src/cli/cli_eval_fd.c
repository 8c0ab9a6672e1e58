/* sparq eval fd: FD, class accuracy and IS-analog of DiTs' samples,
 * measured with the shipped Fashion-MNIST classifier against the 10k test
 * images (spec gft.md 8.2), over a sweep of guidance strengths, with several
 * checkpoints side by side on the same noise: CFG ones at w, GFT ones at
 * beta = 1 / w (spec gft.md 8.2 "Sampling"). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

#define MAX_SCALES 32
#define MAX_MODELS 8

/* "1,1.5,2" into values in [lo, hi]; returns the count or -1. */
static int parse_scales(const char *s, double *out, double lo, double hi) {
  int n = 0;
  while (*s) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < lo || v > hi || n == MAX_SCALES) return -1;
    out[n++] = v;
    if (*end == ',') end++;
    else if (*end) return -1;
    s = end;
  }
  return n;
}

/* Features and probabilities of n images; the caller frees both. */
static int classify(sparq_classifier *cls, const float *images, int64_t n, float **feats, float **probs) {
  const sparq_classifier_config *c = sparq_classifier_get_config(cls);
  *feats = sparq_alloc((size_t)(n * c->hidden) * sizeof **feats, "classifier features");
  *probs = sparq_alloc((size_t)(n * c->num_classes) * sizeof **probs, "classifier probabilities");
  if (!*feats || !*probs || sparq_classifier_features(cls, images, n, *feats, *probs)) {
    sparq_free(*feats), sparq_free(*probs);
    *feats = *probs = NULL;
    return cli_fail_last_error();
  }
  return CLI_OK;
}

typedef struct fd_row {
  double fd, acc, is;
} fd_row;

static int score(sparq_classifier *cls, const sparq_feature_stats *ref, const float *images, const int32_t *labels,
                 int64_t n, fd_row *row) {
  float *feats = NULL, *probs = NULL;
  int rc = classify(cls, images, n, &feats, &probs);
  if (rc) return rc;
  const sparq_classifier_config *c = sparq_classifier_get_config(cls);
  sparq_feature_stats gen = {0};
  if (sparq_feature_stats_compute(feats, n, c->hidden, &gen) || sparq_frechet_distance_stats(ref, &gen, &row->fd) ||
      sparq_class_accuracy(probs, labels, n, c->num_classes, &row->acc) ||
      sparq_is_analog(probs, n, c->num_classes, &row->is))
    rc = cli_fail_last_error();
  sparq_feature_stats_free(&gen);
  sparq_free(feats), sparq_free(probs);
  return rc;
}

/* "a.safetensors,b.safetensors" into at most MAX_MODELS paths (in buf). */
static int split_paths(char *buf, const char **out) {
  int n = 0;
  for (char *p = buf; p && *p;) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    if (!*p || n == MAX_MODELS) return -1;
    out[n++] = p;
    p = comma ? comma + 1 : NULL;
  }
  return n;
}

typedef struct fd_model {
  const char *path;
  sparq_dit *dit;
  sparq_diffusion diff;
  bool gft;
  double seconds, best_fd, best_at; /* sampling seconds over the sweep; best FD and its beta */
  double acc[MAX_SCALES];
} fd_model;

/* One sweep point of one model: CFG samples at w = 1 / beta with 2 NFE per
 * step, GFT at beta with 1; the same seed, so the same noise, for all. */
static int eval_point(fd_model *m, cli_sample_flags f, double beta, sparq_classifier *cls,
                      const sparq_feature_stats *ref, float *x, int32_t *labels, FILE *json, bool text, int point) {
  f.gft = m->gft;
  f.cfg = 1.0 / beta;
  f.beta = m->gft ? beta : 0.0;
  sparq_sample_stats st = {0};
  fd_row row;
  int rc = cli_dit_sample(m->dit, &m->diff, &f, -1, f.n, x, labels, NULL, &st);
  if (!rc) rc = score(cls, ref, x, labels, f.n, &row);
  if (rc) return rc;
  m->seconds += st.seconds;
  m->acc[point] = row.acc;
  if (point == 0 || row.fd < m->best_fd) m->best_fd = row.fd, m->best_at = beta;
  if (json)
    fprintf(json, "{\"model\":\"%s\",\"guidance\":\"%s\",\"beta\":%.4g,\"cfg\":%.4g,\"n\":%" PRId64
           ",\"fd\":%.4f,\"acc\":%.4f,\"is\":%.4f,\"nfe\":%" PRId64
           ",\"seconds\":%.2f,\"sampler\":\"%s\",\"steps\":%" PRId64 ",\"attn\":\"%s\",\"seed\":%" PRId64 "}\n",
           m->path, m->gft ? "gft" : "cfg", beta, 1.0 / beta, f.n, row.fd, row.acc, row.is, st.nfe, st.seconds,
           f.sampler, f.steps, f.attn, f.seed);
  if (text)
    printf("  %6.3f %6.3g  %-4s %9.3f %8.4f %7.3f %5" PRId64 " %9.1f %9.4f   %s\n", beta, 1.0 / beta,
           m->gft ? "gft" : "cfg", row.fd, row.acc, row.is, st.nfe, st.seconds, st.seconds / (double)f.n, m->path);
  fflush(stdout);
  if (json) fflush(json);
  return CLI_OK;
}

/* Each model against the first: best FDs, the largest accuracy gap at
 * matched beta = 1 / w, and the sampling-time ratio over the sweep. */
static void print_summary(const fd_model *m, int nmodels, int npoints) {
  printf("  summary (n per point as above):\n");
  for (int k = 0; k < nmodels; k++)
    printf("    [%d] %-4s best FD %.3f at beta %.3g (w %.3g); sampling %.1f s over the sweep   %s\n", k + 1,
           m[k].gft ? "gft" : "cfg", m[k].best_fd, m[k].best_at, 1.0 / m[k].best_at, m[k].seconds, m[k].path);
  for (int k = 1; k < nmodels; k++) {
    double gap = 0.0;
    for (int i = 0; i < npoints; i++) gap = fmax(gap, fabs(m[k].acc[i] - m[0].acc[i]));
    printf("    [%d] vs [1]: best FD ratio %.3f, largest accuracy gap at matched beta %.2f points, sampling time "
           "ratio %.3f\n",
           k + 1, m[k].best_fd / m[0].best_fd, 100.0 * gap, m[k].seconds / m[0].seconds);
  }
}

int cli_eval_fd(int argc, char **argv) {
  cli_sample_flags f = cli_sample_flags_default();
  f.n = 10000;
  const char *scales_arg = NULL, *betas_arg = NULL, *classifier = NULL, *data_dir = NULL, *jsonl = NULL;
  bool json = false;
  cli_opt opts[CLI_SAMPLE_OPTS + 8];
  int nopts = cli_sample_opts(&f, opts);
  opts[nopts++] = (cli_opt){"beta", CLI_STRING, &betas_arg, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"cfg", CLI_STRING, &scales_arg, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"n", CLI_INT, &f.n, 2, 1000000, NULL};
  opts[nopts++] = (cli_opt){"classifier", CLI_STRING, &classifier, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"data-dir", CLI_STRING, &data_dir, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"json", CLI_BOOL, &json, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"jsonl", CLI_STRING, &jsonl, 0, 0, NULL};
  int rc = cli_parse("eval", argc, argv, 2, opts, nopts, NULL, 0, NULL);
  if (rc) return rc;
  if (!f.ckpt) return cli_usage_error("eval", "--ckpt CKPT[,CKPT...] is required");
  if (json && jsonl) return cli_usage_error("eval", "--json prints the rows, --jsonl FILE writes them: give one");
  if (scales_arg && betas_arg) return cli_usage_error("eval", "--cfg and --beta are two spellings of one sweep: give one");
  double betas[MAX_SCALES] = {1.0};
  int npoints = 1;
  if (betas_arg && (npoints = parse_scales(betas_arg, betas, 1e-6, 1.0)) < 1)
    return cli_usage_error("eval", "--beta takes up to %d temperatures in (0, 1], e.g. 1,.8,.67,.5,.4,.33,.25",
                           MAX_SCALES);
  if (scales_arg) {
    if ((npoints = parse_scales(scales_arg, betas, 1.0, 100.0)) < 1)
      return cli_usage_error("eval", "--cfg takes up to %d scales in [1, 100], e.g. 1,1.5,2 (w < 1 is beta > 1, "
                                     "outside GFT's range)",
                             MAX_SCALES);
    for (int i = 0; i < npoints; i++) betas[i] = sparq_gft_w_to_beta((float)betas[i]);
  }
  char *paths_buf = strdup(f.ckpt);
  const char *paths[MAX_MODELS];
  const int nmodels = paths_buf ? split_paths(paths_buf, paths) : -1;
  if (nmodels < 1) {
    free(paths_buf);
    return cli_usage_error("eval", "--ckpt takes 1 to %d comma-separated checkpoints", MAX_MODELS);
  }

  fd_model models[MAX_MODELS];
  memset(models, 0, sizeof models);
  /* the JSON rows go to stdout (--json) or to a file next to the table (--jsonl) */
  FILE *json_out = json ? stdout : NULL;
  if (jsonl && !(json_out = fopen(jsonl, "w"))) {
    free(paths_buf);
    return cli_fail("eval fd: %s: %s", jsonl, strerror(errno));
  }
  sparq_classifier *cls = NULL;
  sparq_fashion_mnist test = {0}, train = {0};
  sparq_feature_stats ref = {0};
  float *feats = NULL, *probs = NULL, *x = NULL;
  int32_t *labels = NULL;
  fd_row floor = {0};
  const char *cls_path = classifier ? classifier : sparq_classifier_default_path();
  if (!cls_path) {
    rc = cli_fail("eval fd: the shipped classifier was not found; pass --classifier PATH");
    goto done;
  }
  int64_t dim = 0;
  for (int k = 0; k < nmodels && !rc; k++) {
    cli_dit_info info;
    models[k].path = paths[k];
    if ((rc = cli_load_dit(paths[k], f.raw, &models[k].dit, &models[k].diff, &info))) break;
    models[k].gft = info.gft;
    const sparq_dit_config *c = sparq_dit_get_config(models[k].dit);
    const int64_t d = c->in_channels * c->input_size * c->input_size;
    if (k > 0 && d != dim) rc = cli_fail("eval fd: %s makes %" PRId64 " values per image, %s %" PRId64, paths[k], d, paths[0], dim);
    dim = d;
  }
  if (rc) goto done;
  if (sparq_classifier_load(cls_path, &cls)) {
    rc = cli_fail_last_error();
    goto done;
  }
  const char *dir = data_dir ? data_dir : SPARQ_FASHION_MNIST_DEFAULT_DIR;
  if (sparq_fashion_mnist_load(dir, SPARQ_SPLIT_TEST, false, 0, &test) ||
      sparq_fashion_mnist_load(dir, SPARQ_SPLIT_TRAIN, false, f.n < 60000 ? f.n : 60000, &train)) {
    rc = cli_fail_last_error();
    goto done;
  }
  if ((rc = classify(cls, test.images, test.n, &feats, &probs))) goto done;
  if (sparq_feature_stats_compute(feats, test.n, sparq_classifier_get_config(cls)->hidden, &ref)) {
    rc = cli_fail_last_error();
    goto done;
  }
  /* the floor: real training images scored the same way, same count */
  if ((rc = score(cls, &ref, train.images, train.labels, train.n, &floor))) goto done;
  x = sparq_alloc((size_t)(f.n * dim) * sizeof *x, "samples");
  labels = sparq_alloc((size_t)f.n * sizeof *labels, "labels");
  if (!x || !labels) {
    rc = cli_fail_last_error();
    goto done;
  }
  if (json_out)
    fprintf(json_out,
            "{\"cfg\":null,\"what\":\"train images\",\"n\":%" PRId64 ",\"fd\":%.4f,\"acc\":%.4f,\"is\":%.4f}\n",
            train.n, floor.fd, floor.acc, floor.is);
  if (!json)
    printf("eval fd: %s %" PRId64 " steps, %" PRId64 " samples per point (balanced classes), seed %" PRId64
           ", attention %s, against %" PRId64 " test images; CFG models at w = 1/beta (2 NFE per step), GFT "
           "models at beta (1 NFE per step)\n  floor (%" PRId64 " real training images): FD %.3f  acc %.4f  IS %.3f\n"
           "  %6s %6s  %-4s %9s %8s %7s %5s %9s %9s   %s\n",
           f.sampler, f.steps, f.n, f.seed, f.attn, test.n, train.n, floor.fd, floor.acc, floor.is, "beta", "w",
           "kind", "FD", "acc", "IS", "NFE", "seconds", "s/image", "checkpoint");
  /* one small untimed batch per model first, so no model's first point
   * pays for the page faults and caches of the others */
  for (int k = 0; k < nmodels && !rc; k++) {
    cli_sample_flags warm = f;
    warm.gft = models[k].gft, warm.cfg = 1.0, warm.beta = models[k].gft ? 1.0 : 0.0, warm.steps = 1;
    rc = cli_dit_sample(models[k].dit, &models[k].diff, &warm, -1, f.n < 256 ? f.n : 256, x, labels, NULL, NULL);
  }
  for (int i = 0; i < npoints && !rc; i++)
    for (int k = 0; k < nmodels && !rc; k++)
      rc = eval_point(&models[k], f, betas[i], cls, &ref, x, labels, json_out, !json, i);
  if (!rc && !json) print_summary(models, nmodels, npoints);
done:
  sparq_free(x), sparq_free(labels), sparq_free(feats), sparq_free(probs);
  sparq_feature_stats_free(&ref);
  for (int k = 0; k < nmodels; k++) {
    sparq_dit_free(models[k].dit);
    sparq_diffusion_free(&models[k].diff);
  }
  free(paths_buf);
  if (json_out && json_out != stdout && fclose(json_out) != 0 && !rc)
    rc = cli_fail("eval fd: %s: write failed", jsonl);
  sparq_fashion_mnist_free(&test);
  sparq_fashion_mnist_free(&train);
  sparq_classifier_free(cls);
  return rc;
}
