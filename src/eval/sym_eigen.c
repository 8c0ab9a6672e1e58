/* Symmetric eigendecompositions for the Fréchet distance, through
 * LAPACKE_dsyevd (divide and conquer: the fast LAPACK driver when the
 * eigenvectors are wanted too). A symmetric matrix is its own transpose, so
 * row-major storage needs no conversion. */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "eval/gen_metrics_internal.h"
#include "sparq/base.h"

/* dsyevd overwrites its input with the eigenvectors: run it on a copy. */
static sparq_status syevd(char jobz, double *a, double *w, int64_t F) {
  const lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, jobz, 'U', (lapack_int)F, a, (lapack_int)F, w);
  if (info < 0) return sparq_fail(SPARQ_ERR_INTERNAL, "LAPACKE_dsyevd: argument %d is invalid", (int)-info);
  if (info > 0)
    return sparq_fail(SPARQ_ERR_INTERNAL, "LAPACKE_dsyevd: the eigenvalues did not converge (%d)", (int)info);
  return SPARQ_OK;
}

sparq_status gm_sym_eigvals(double *w, const double *a, int64_t F) {
  double *v = sparq_alloc((size_t)(F * F) * sizeof(double), "eigen workspace");
  if (!v) return SPARQ_ERR_NOMEM;
  memcpy(v, a, (size_t)(F * F) * sizeof(double));
  sparq_status s = syevd('N', v, w, F);
  sparq_free(v);
  return s;
}

sparq_status gm_sym_sqrt(double *out, const double *a, int64_t F) {
  double *v = sparq_alloc((size_t)(F * F) * sizeof(double), "eigen workspace");
  double *w = sparq_alloc((size_t)F * sizeof(double), "eigenvalues");
  double *vs = sparq_alloc((size_t)(F * F) * sizeof(double), "eigen workspace");
  sparq_status s = (!v || !w || !vs) ? SPARQ_ERR_NOMEM : SPARQ_OK;
  if (!s) {
    memcpy(v, a, (size_t)(F * F) * sizeof(double));
    s = syevd('V', v, w, F);
  }
  if (!s) {
    /* column j of v is the eigenvector of w[j]; a PSD matrix's negative
     * eigenvalues are rounding and count as 0 */
    for (int64_t j = 0; j < F; j++) w[j] = sqrt(w[j] > 0.0 ? w[j] : 0.0);
    for (int64_t i = 0; i < F; i++)
      for (int64_t j = 0; j < F; j++) vs[i * F + j] = v[i * F + j] * w[j];
    /* out = (V sqrt(L)) V^T, computed on the upper triangle and mirrored so
     * the result is exactly symmetric */
    for (int64_t i = 0; i < F; i++)
      for (int64_t k = i; k < F; k++) {
        double sum = 0.0;
        for (int64_t j = 0; j < F; j++) sum += vs[i * F + j] * v[k * F + j];
        out[i * F + k] = out[k * F + i] = sum;
      }
  }
  sparq_free(v);
  sparq_free(w);
  sparq_free(vs);
  return s;
}
