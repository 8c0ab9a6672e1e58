/* Pieces shared by the SignGD study files: a sparse view of one patch, a
 * growable text buffer for the log, table and script writers, and the
 * section 3 measurement. Not part of the public API. */
#ifndef SPARQ_STUDY_SIGNGD_INTERNAL_H
#define SPARQ_STUDY_SIGNGD_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/signgd.h"

/* Patch x = coef * sum_j val[j] e_{idx[j]}. The signal patch is one entry
 * (coordinate 0, value 1) scaled by y * ||mu||, the noise patch its s entries
 * with coef 1, so every loop over a patch has the same shape. */
typedef struct sg_patch {
  int64_t nnz;
  const int32_t *idx;
  const double *val;
  double coef;
} sg_patch;

/* Patch p (storage order) of sample i, and whether it is the signal patch. */
sg_patch sg_patch_get(const sparq_signgd_data *data, int64_t i, int p);

/* <w, x> for a dense row w[0..d). */
static inline double sg_dot(const double *w, sg_patch x) {
  double acc = 0;
  for (int64_t j = 0; j < x.nnz; j++) acc += w[x.idx[j]] * x.val[j];
  return x.coef * acc;
}

/* w += a * x. */
static inline void sg_axpy(double *w, double a, sg_patch x) {
  double ax = a * x.coef;
  for (int64_t j = 0; j < x.nnz; j++) w[x.idx[j]] += ax * x.val[j];
}

/* Forward of one sample with patches x[0], x[1] and value direction v, into
 * caller scratch q, k [2][m_k], u [2], S [2][2]; returns f. */
double sg_sample_forward(const sparq_signgd_model *m, const double *v, const sg_patch x[2], double *q, double *k,
                         double u[2], double S[2][2]);

/* Logistic loss log(1 + e^-z) and its derivative -1 / (1 + e^z), both
 * without overflow for any finite z. */
double sg_logistic(double z);
double sg_logistic_grad(double z);

/* A heap string that grows; `failed` latches the first allocation failure so
 * a writer checks once at the end. */
typedef struct sg_text {
  char *buf;
  size_t len, cap;
  int failed;
} sg_text;

void sg_text_printf(sg_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A number, or null when it is not finite (JSON has no NaN). */
void sg_text_num(sg_text *t, double x);
/* Writes the text atomically to `path` and frees it. */
sparq_status sg_text_commit(sg_text *t, const char *path);
void sg_text_free(sg_text *t);

/* The scalar fields of sparq_signgd_point after `step`, in log and .dat
 * column order. */
#define SG_FIELDS(X)                                                                                                 \
  X(train_loss) X(test_loss) X(test_error) X(value_signal) X(value_noise) X(q_signal) X(k_signal) X(q_noise)       \
      X(k_noise) X(q_noise_pos) X(k_noise_pos) X(alignment) X(s11) X(s21) X(q_vote) X(k_vote) X(q_flip) X(k_flip)

/* 1-based gnuplot column of a field in sparq_signgd_write_dat's table
 * ("step" is 1), 0 for an unknown name. */
int sg_dat_column(const char *name);

/* Reference signs for the late sign flips of section 4, Stage IV: the query
 * and key noise signs of every (s, i) at t_align. */
typedef struct sg_flip_ref {
  int set;
  int8_t *q, *k; /* [m_k][n] */
} sg_flip_ref;

/* Fills every field of *out except step, train_loss and test_loss/test_error
 * (the caller has those), plus q_neuron/k_neuron [m_k]. v is the value
 * direction of m; signs holds 2 * m_k * n int8, qk 4 * m_k doubles. When ref->set is 0 and the
 * alignment reaches SPARQ_SIGNGD_ALIGNED, the current signs become the
 * reference (ref arrays must hold m_k * n each). */
void sg_measure(const sparq_signgd_model *m, const sparq_signgd_data *train, const double *v, sg_flip_ref *ref,
                sparq_signgd_point *out, double *q_neuron, double *k_neuron, int8_t *signs, double *qk);

#endif
