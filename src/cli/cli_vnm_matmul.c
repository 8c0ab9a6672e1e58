/* sparq vnm-matmul: Y = X * W^T with a packed V:N:M matrix written by
 * `sparq prune`, in the original (unpermuted) feature order. --check also
 * runs sparq_sgemm on the unpacked masked matrix and prints the largest
 * difference, relative to sum |w x| of the output. */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "sparq/sparq.h"
#include "sparq/vnm.h"

/* Largest |y - y_dense| / sum_c |w_rc x_tc| over all outputs. */
static int dense_check(const sparq_vnm_matrix *m, const float *x, int64_t tokens, const float *y, double *worst) {
  size_t nw = (size_t)(m->rows * m->cols), nx = (size_t)(tokens * m->cols), ny = (size_t)(tokens * m->rows);
  float *wd = sparq_alloc(nw * sizeof(float), "check W"), *aw = sparq_alloc(nw * sizeof(float), "check |W|");
  float *ax = sparq_alloc(nx * sizeof(float), "check |X|");
  float *yd = sparq_alloc(ny * sizeof(float), "check Y"), *sc = sparq_alloc(ny * sizeof(float), "check scale");
  int rc = CLI_OK;
  if (!wd || !aw || !ax || !yd || !sc || sparq_vnm_unpack(m, wd, m->cols) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  for (size_t i = 0; i < nw; i++) aw[i] = fabsf(wd[i]);
  for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]);
  if (sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, tokens, m->rows, m->cols, 1, x, m->cols, wd, m->cols, 0, yd,
                  m->rows) != SPARQ_OK ||
      sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, tokens, m->rows, m->cols, 1, ax, m->cols, aw, m->cols, 0, sc,
                  m->rows) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  *worst = 0;
  for (size_t i = 0; i < ny; i++) {
    double d = fabs((double)y[i] - (double)yd[i]) / ((double)sc[i] + 1e-30);
    if (d > *worst || isnan(d)) *worst = d;
  }
done:
  sparq_free(wd), sparq_free(aw), sparq_free(ax), sparq_free(yd), sparq_free(sc);
  return rc;
}

static int usage_error(const char *what) {
  fprintf(stderr, "sparq vnm-matmul: %s\n", what);
  cli_usage("vnm-matmul", false);
  return CLI_USAGE;
}

int cli_vnm_matmul(int argc, char **argv) {
  const char *wpath = NULL, *xpath = NULL, *out = NULL, *name = NULL;
  bool check = false;
  const cli_opt opts[] = {
      {"w", CLI_STRING, &wpath, 0, 0, NULL},   {"x", CLI_STRING, &xpath, 0, 0, NULL},
      {"out", CLI_STRING, &out, 0, 0, NULL},   {"name", CLI_STRING, &name, 0, 0, NULL},
      {"check", CLI_BOOL, &check, 0, 0, NULL},
  };
  int rc = cli_parse("vnm-matmul", argc, argv, 1, opts, 5, NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  if (!wpath) return usage_error("missing --w");
  if (!xpath) return usage_error("missing --x");
  if (!out) return usage_error("missing --out");
  sparq_safetensors *st = NULL;
  sparq_vnm_matrix *m = NULL;
  float *x = NULL, *y = NULL;
  int64_t xs[2];
  if (sparq_safetensors_open(wpath, &st) != SPARQ_OK || sparq_vnm_load(st, name, &m) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  if ((rc = cli_load_matrix(xpath, NULL, &x, xs, NULL, 0)) != CLI_OK) goto done;
  if (xs[1] != m->cols) {
    rc = cli_fail("%s: X has %lld features, the packed matrix %lld input features", xpath, (long long)xs[1],
                  (long long)m->cols);
    goto done;
  }
  y = sparq_alloc((size_t)(xs[0] * m->rows) * sizeof(float), "vnm-matmul Y");
  double t0 = sparq_now();
  if (!y || sparq_vnm_gemm(m, xs[0], x, m->cols, y, m->rows) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  double ms = (sparq_now() - t0) * 1e3;
  sparq_tensor ty = {y, SPARQ_F32, 2, {xs[0], m->rows}};
  if (sparq_npy_write(out, &ty) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  char text[32];
  sparq_vnm_pattern_format(m->pattern, text, sizeof text);
  printf("Y = X * W^T: X [%lld x %lld], W %s [%lld x %lld] -> Y [%lld x %lld] in %.3f ms; wrote %s\n",
         (long long)xs[0], (long long)xs[1], text, (long long)m->rows, (long long)m->cols, (long long)xs[0],
         (long long)m->rows, ms, out);
  if (check) {
    double worst = 0;
    if ((rc = dense_check(m, x, xs[0], y, &worst)) != CLI_OK) goto done;
    printf("  check against sparq_sgemm on the unpacked matrix: max relative difference %.3g\n", worst);
  }
done:
  sparq_vnm_free(m);
  sparq_safetensors_close(st);
  sparq_free(x);
  sparq_free(y);
  return rc;
}
