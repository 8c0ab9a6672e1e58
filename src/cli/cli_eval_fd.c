/* sparq eval fd: FD, class accuracy and IS-analog of a DiT's samples,
 * measured with the shipped Fashion-MNIST classifier against the 10k test
 * images (spec gft.md 8.2), over a sweep of CFG scales. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

#define MAX_SCALES 32

/* "1,1.5,2" into scales; returns the count or -1. */
static int parse_scales(const char *s, double *out) {
  int n = 0;
  while (*s) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0 || v > 100 || n == MAX_SCALES) return -1;
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

int cli_eval_fd(int argc, char **argv) {
  cli_sample_flags f = cli_sample_flags_default();
  f.n = 10000;
  const char *scales_arg = NULL, *classifier = NULL, *data_dir = NULL;
  bool json = false;
  cli_opt opts[CLI_SAMPLE_OPTS + 5];
  int nopts = cli_sample_opts(&f, opts);
  opts[nopts++] = (cli_opt){"cfg", CLI_STRING, &scales_arg, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"n", CLI_INT, &f.n, 2, 1000000, NULL};
  opts[nopts++] = (cli_opt){"classifier", CLI_STRING, &classifier, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"data-dir", CLI_STRING, &data_dir, 0, 0, NULL};
  opts[nopts++] = (cli_opt){"json", CLI_BOOL, &json, 0, 0, NULL};
  int rc = cli_parse("eval", argc, argv, 2, opts, nopts, NULL, 0, NULL);
  if (rc) return rc;
  if (!f.ckpt) return cli_usage_error("eval", "--ckpt CKPT is required");
  double scales[MAX_SCALES] = {1.0};
  int nscales = scales_arg ? parse_scales(scales_arg, scales) : 1;
  if (nscales < 1) return cli_usage_error("eval", "--cfg takes up to %d scales in [0, 100], e.g. 1,1.5,2", MAX_SCALES);

  sparq_classifier *cls = NULL;
  const char *cls_path = classifier ? classifier : sparq_classifier_default_path();
  if (!cls_path) return cli_fail("eval fd: the shipped classifier was not found; pass --classifier PATH");
  if (sparq_classifier_load(cls_path, &cls)) return cli_fail_last_error();
  sparq_fashion_mnist test = {0}, train = {0};
  const char *dir = data_dir ? data_dir : SPARQ_FASHION_MNIST_DEFAULT_DIR;
  sparq_feature_stats ref = {0};
  float *feats = NULL, *probs = NULL, *x = NULL;
  int32_t *labels = NULL;
  sparq_dit *dit = NULL;
  sparq_diffusion diff = {0};
  fd_row floor = {0};
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
  cli_dit_info info;
  if ((rc = cli_load_dit(f.ckpt, f.raw, &dit, &diff, &info))) goto done;
  f.gft = info.gft;
  const sparq_dit_config *c = sparq_dit_get_config(dit);
  const int64_t dim = c->in_channels * c->input_size * c->input_size;
  x = sparq_alloc((size_t)(f.n * dim) * sizeof *x, "samples");
  labels = sparq_alloc((size_t)f.n * sizeof *labels, "labels");
  if (!x || !labels) {
    rc = cli_fail_last_error();
    goto done;
  }
  if (json)
    printf("{\"cfg\":null,\"what\":\"train images\",\"n\":%" PRId64 ",\"fd\":%.4f,\"acc\":%.4f,\"is\":%.4f}\n",
           train.n, floor.fd, floor.acc, floor.is);
  else
    printf("eval fd: %s%s, %s %" PRId64 " steps, %" PRId64 " samples (balanced classes), attention %s, against %" PRId64
           " test images\n  floor (%" PRId64 " real training images): FD %.3f  acc %.4f  IS %.3f\n"
           "  %6s %9s %8s %7s %5s %10s %12s\n",
           f.ckpt, f.gft ? " (GFT: cfg w samples with beta = 1/w)" : "", f.sampler, f.steps, f.n, f.attn, test.n, train.n, floor.fd, floor.acc, floor.is, "cfg", "FD",
           "acc", "IS", "NFE", "seconds", "s/image");
  for (int i = 0; i < nscales && !rc; i++) {
    f.cfg = scales[i];
    sparq_sample_stats st = {0};
    fd_row row;
    if ((rc = cli_dit_sample(dit, &diff, &f, -1, f.n, x, labels, NULL, &st))) break;
    if ((rc = score(cls, &ref, x, labels, f.n, &row))) break;
    if (json)
      printf("{\"cfg\":%.4g,\"n\":%" PRId64 ",\"fd\":%.4f,\"acc\":%.4f,\"is\":%.4f,\"nfe\":%" PRId64
             ",\"seconds\":%.2f,\"sampler\":\"%s\",\"steps\":%" PRId64 ",\"attn\":\"%s\"}\n",
             f.cfg, f.n, row.fd, row.acc, row.is, st.nfe, st.seconds, f.sampler, f.steps, f.attn);
    else
      printf("  %6.3g %9.3f %8.4f %7.3f %5" PRId64 " %10.1f %12.4f\n", f.cfg, row.fd, row.acc, row.is, st.nfe,
             st.seconds, st.seconds / (double)f.n);
    fflush(stdout);
  }
done:
  sparq_free(x), sparq_free(labels), sparq_free(feats), sparq_free(probs);
  sparq_feature_stats_free(&ref);
  sparq_dit_free(dit);
  sparq_diffusion_free(&diff);
  sparq_fashion_mnist_free(&test);
  sparq_fashion_mnist_free(&train);
  sparq_classifier_free(cls);
  return rc;
}
