/* The finite-difference harness of the layer tests: double copies of FP32
 * inputs, forward checks against a double forward, and gradient checks by
 * central differences of L = sum_i out_i r_i in double. Include after
 * cmocka.h. */
#ifndef SPARQ_FD_TEST_UTIL_H
#define SPARQ_FD_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sparq/base.h"

static inline float *falloc(size_t n) { return sparq_calloc(n ? n : 1, sizeof(float), "test buffer"); }
static inline double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static inline double *to_double(const float *x, size_t n) {
  double *d = dalloc(n);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* n normals N(mean, sd^2) from (seed, stream), in a new buffer. */
static inline float *frand_stream(size_t n, uint64_t seed, uint64_t stream, float mean, float sd) {
  float *x = falloc(n);
  sparq_rng rng = sparq_rng_make(seed, stream);
  sparq_rng_fill_normal(&rng, x, n, mean, sd);
  return x;
}

/* max |test - ref| / max(1, max |ref|) must stay within tol. */
static inline void expect_forward(const char *what, const float *test, const double *ref, size_t n, double tol) {
  double scale = 1.0, err = 0.0;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
  for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)test[i] - ref[i]));
  if (getenv("NN_TEST_VERBOSE")) printf("%-36s forward error %.3g\n", what, err / scale);
  if (!(err <= tol * scale)) fail_msg("%s: forward error %.3g of %.3g (limit %.1g)", what, err, scale, tol);
}

/* A double forward over the arrays in ctx, writing the outputs. */
typedef void (*fd_forward)(const void *ctx, double *out);

typedef struct fd_var {
  const char *name;
  double *x; /* the double copy the forward reads (perturbed in place) */
  size_t n;
  const float *grad; /* the analytic gradient to check */
} fd_var;

static inline double fd_objective(fd_forward f, const void *ctx, const double *r, double *out, size_t nout) {
  f(ctx, out);
  double l = 0.0;
  for (size_t i = 0; i < nout; i++) l += out[i] * r[i];
  return l;
}

/* dL/dx by central differences (h = 1e-6 max(1, |x|)) for every element of
 * every variable, compared with the analytic gradients: max error <= tol of
 * the largest finite-difference gradient. */
static inline void fd_check(const char *layer, fd_forward f, const void *ctx, const float *r32, size_t nout,
                            fd_var *vars, int nvars, double tol) {
  double *r = to_double(r32, nout), *out = dalloc(nout);
  size_t total = 0;
  for (int v = 0; v < nvars; v++) total += vars[v].n;
  double *fd = dalloc(total), scale = 0.0;
  size_t at = 0;
  for (int v = 0; v < nvars; v++)
    for (size_t i = 0; i < vars[v].n; i++, at++) {
      double *x = &vars[v].x[i];
      const double keep = *x, h = 1e-6 * fmax(1.0, fabs(keep));
      *x = keep + h;
      const double lp = fd_objective(f, ctx, r, out, nout);
      *x = keep - h;
      const double lm = fd_objective(f, ctx, r, out, nout);
      *x = keep;
      fd[at] = (lp - lm) / (2 * h);
      scale = fmax(scale, fabs(fd[at]));
    }
  assert_true(scale > 0);
  double worst = 0.0;
  at = 0;
  for (int v = 0; v < nvars; v++)
    for (size_t i = 0; i < vars[v].n; i++, at++) {
      const double e = fabs((double)vars[v].grad[i] - fd[at]) / scale;
      worst = fmax(worst, e);
      if (!(e <= tol))
        fail_msg("%s: d/d%s[%zu] analytic %.9g, finite difference %.9g (error %.3g of the largest gradient %.3g)",
                 layer, vars[v].name, i, (double)vars[v].grad[i], fd[at], e, scale);
    }
  if (getenv("NN_TEST_VERBOSE")) printf("%-36s gradient error %.3g (scale %.3g)\n", layer, worst, scale);
  free(r), free(out), free(fd);
}

#endif
