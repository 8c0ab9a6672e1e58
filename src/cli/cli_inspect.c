/* sparq inspect FILE: what is in a tensor file. The format comes from the
 * file's first bytes, never its name, so a misnamed file still reads (or
 * fails with the real reason). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

typedef struct stats {
  size_t finite, nan, pos_inf, neg_inf;
  double min, max, mean, std;
} stats;

/* Two passes: the first finds the range, the second runs Welford's update
 * on values divided by the largest magnitude, so neither the mean nor the
 * sum of squares overflows even for F64 data near 1e308. */
static stats compute_stats(const sparq_tensor *t, size_t n) {
  stats s = {0};
  for (size_t i = 0; i < n; i++) {
    double v = sparq_tensor_get(t, i);
    if (isnan(v)) s.nan++;
    else if (v == INFINITY) s.pos_inf++;
    else if (v == -INFINITY) s.neg_inf++;
    else {
      if (!s.finite || v < s.min) s.min = v;
      if (!s.finite || v > s.max) s.max = v;
      s.finite++;
    }
  }
  double scale = fmax(fabs(s.min), fabs(s.max));
  if (!s.finite || scale == 0) return s;
  double mean = 0, m2 = 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    double v = sparq_tensor_get(t, i);
    if (!isfinite(v)) continue;
    v /= scale;
    k++;
    double d = v - mean;
    mean += d / (double)k;
    m2 += d * (v - mean);
  }
  s.mean = mean * scale;
  s.std = sqrt(m2 / (double)k) * scale;
  return s;
}

/* Prints s with control characters escaped, so a hostile name cannot
 * break the one-line-per-tensor output. */
static void print_escaped(const char *s, int width) {
  int n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
    if (*p < 0x20 || *p == 0x7f) n += printf("\\x%02x", *p) - 1;
    else putchar(*p);
  }
  for (; n < width; n++) putchar(' ');
}

static void print_tensor(const char *name, int name_width, const sparq_tensor *t, bool want_stats) {
  if (!want_stats) name_width = 0;
  char shape[SPARQ_MAX_DIMS * 22 + 4];
  size_t k = 0;
  k += (size_t)snprintf(shape + k, sizeof shape - k, "[");
  for (int i = 0; i < t->ndim; i++) k += (size_t)snprintf(shape + k, sizeof shape - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
  snprintf(shape + k, sizeof shape - k, "]");
  printf("  ");
  print_escaped(name, name_width);
  /* pad the columns only when the stats follow them */
  printf(want_stats ? "  %-7s  %-16s" : "  %s  %s", sparq_dtype_name(t->dtype), shape);
  size_t n = 0;
  sparq_tensor_numel(t, &n);
  if (want_stats) {
    if (n == 0) {
      printf("  empty");
    } else {
      stats s = compute_stats(t, n);
      if (s.finite)
        printf("  min %.6g  max %.6g  mean %.6g  std %.6g", s.min, s.max, s.mean, s.std);
      else
        printf("  no finite values");
      if (s.nan) printf("  nan %zu", s.nan);
      if (s.pos_inf) printf("  +inf %zu", s.pos_inf);
      if (s.neg_inf) printf("  -inf %zu", s.neg_inf);
    }
  }
  putchar('\n');
}

static int inspect_safetensors(const char *path, bool want_stats) {
  sparq_safetensors *st;
  if (sparq_safetensors_open(path, &st)) return cli_fail_last_error();
  printf("%s: safetensors, %zu tensor%s, %zu metadata entr%s\n", path, st->count, st->count == 1 ? "" : "s",
         st->metadata_count, st->metadata_count == 1 ? "y" : "ies");
  int width = 4;
  for (size_t i = 0; i < st->count; i++) {
    size_t len = strlen(st->names[i]);
    if ((int)len > width) width = len > 40 ? 40 : (int)len;
  }
  for (size_t i = 0; i < st->count; i++) print_tensor(st->names[i], width, &st->tensors[i], want_stats);
  if (st->metadata_count) printf("metadata:\n");
  for (size_t i = 0; i < st->metadata_count; i++) {
    printf("  ");
    print_escaped(st->metadata_keys[i], 0);
    printf(" = ");
    print_escaped(st->metadata_values[i], 0);
    putchar('\n');
  }
  sparq_safetensors_close(st);
  return CLI_OK;
}

static int inspect_array(const char *path, sparq_file_format fmt, bool want_stats) {
  sparq_tensor t;
  sparq_status s = fmt == SPARQ_FORMAT_NPY ? sparq_npy_read(path, &t) : sparq_idx_read(path, &t);
  if (s) return cli_fail_last_error();
  printf("%s: %s, 1 tensor\n", path, fmt == SPARQ_FORMAT_NPY ? "npy" : fmt == SPARQ_FORMAT_IDX ? "IDX" : "IDX (gzip)");
  print_tensor("data", 4, &t, want_stats);
  sparq_tensor_free(&t);
  return CLI_OK;
}

int cli_inspect(int argc, char **argv) {
  bool stats_flag = false, no_stats = false;
  const cli_opt opts[] = {
      {.name = "stats", .kind = CLI_BOOL, .dst = &stats_flag},
      {.name = "no-stats", .kind = CLI_BOOL, .dst = &no_stats},
  };
  const char *path = NULL;
  int npos = 0;
  int rc = cli_parse("inspect", argc, argv, 1, opts, 2, &path, 1, &npos);
  if (rc != CLI_OK) return rc;
  if (npos != 1) {
    fprintf(stderr, "sparq inspect: missing FILE\n");
    cli_usage("inspect", false);
    return CLI_USAGE;
  }
  if (stats_flag && no_stats) {
    fprintf(stderr, "sparq inspect: --stats and --no-stats contradict each other\n");
    cli_usage("inspect", false);
    return CLI_USAGE;
  }
  sparq_file_format fmt;
  if (sparq_detect_file_format(path, &fmt)) return cli_fail_last_error();
  if (fmt == SPARQ_FORMAT_SAFETENSORS) return inspect_safetensors(path, !no_stats);
  return inspect_array(path, fmt, !no_stats);
}
