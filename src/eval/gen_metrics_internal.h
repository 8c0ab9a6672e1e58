/* Symmetric eigen helpers shared by the Fréchet distance files, on dense
 * row-major double matrices (LAPACKE_dsyevd underneath). */
#ifndef SPARQ_EVAL_GEN_METRICS_INTERNAL_H
#define SPARQ_EVAL_GEN_METRICS_INTERNAL_H

#include <stdint.h>

#include "sparq/gen_metrics.h"

/* out [F,F] = A^{1/2} = V diag(sqrt(max(l, 0))) V^T for the symmetric
 * a [F,F] = V diag(l) V^T (a is not modified; only its upper triangle is
 * read). */
sparq_status gm_sym_sqrt(double *out, const double *a, int64_t F);
/* The eigenvalues of the symmetric a [F,F] (upper triangle read), in
 * ascending order, into w [F]. */
sparq_status gm_sym_eigvals(double *w, const double *a, int64_t F);

#endif
