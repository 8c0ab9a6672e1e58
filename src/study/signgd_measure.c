/* The section 3 quantities of one step, on the training set: value signal
 * and noise, query/key signal and noise, their sign alignment, the softmax
 * scores by patch role, and the Stage III vote and Stage IV flip markers. */
#include <math.h>
#include <string.h>

#include "study/signgd_internal.h"

static int sign_of(double x) { return (x > 0) - (x < 0); }

/* Fraction of neurons whose signal sign equals `dir` times the sign of the
 * majority vote over samples of `noise` signs ([m_k][n]); tied votes are
 * left out, and 0.5 (no information) is returned when every vote ties. */
static double vote_agreement(const double *signal, const int8_t *noise, int64_t mk, int64_t n, int dir) {
  int64_t decided = 0, agree = 0;
  for (int64_t a = 0; a < mk; a++) {
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++) sum += noise[a * n + i];
    if (sum == 0) continue;
    decided++;
    agree += sign_of(signal[a]) == dir * (sum > 0 ? 1 : -1);
  }
  return decided ? (double)agree / (double)decided : 0.5;
}

void sg_measure(const sparq_signgd_model *m, const sparq_signgd_data *train, const double *v, sg_flip_ref *ref,
                sparq_signgd_point *out, double *q_neuron, double *k_neuron, int8_t *signs, double *qk) {
  const int64_t d = m->d, mk = m->m_k, n = train->n;
  const double mu = train->mu_norm;
  int8_t *qs = signs, *ks = signs + mk * n; /* noise signs [m_k][n] */

  out->value_signal = mu * v[0];
  double vn = 0;
  for (int64_t i = 0; i < n; i++) {
    const int p = 1 - train->signal_pos[i];
    vn += train->y[i] * sg_dot(v, sg_patch_get(train, i, p));
  }
  out->value_noise = vn / (double)n;

  double qsig = 0, ksig = 0, qabs = 0, kabs = 0;
  int64_t qpos = 0, kpos = 0, aligned = 0;
  for (int64_t a = 0; a < mk; a++) {
    const double *wq = m->wq + a * d, *wk = m->wk + a * d;
    q_neuron[a] = mu * wq[0];
    k_neuron[a] = mu * wk[0];
    qsig += fabs(q_neuron[a]);
    ksig += fabs(k_neuron[a]);
    for (int64_t i = 0; i < n; i++) {
      const sg_patch xi = sg_patch_get(train, i, 1 - train->signal_pos[i]);
      const double qn = train->y[i] * sg_dot(wq, xi), kn = train->y[i] * sg_dot(wk, xi);
      qabs += fabs(qn);
      kabs += fabs(kn);
      qpos += qn > 0;
      kpos += kn > 0;
      qs[a * n + i] = (int8_t)sign_of(qn);
      ks[a * n + i] = (int8_t)sign_of(kn);
      aligned += qs[a * n + i] == ks[a * n + i];
    }
  }
  const double pairs = (double)(mk * n);
  out->q_signal = qsig / (double)mk;
  out->k_signal = ksig / (double)mk;
  out->q_noise = qabs / pairs;
  out->k_noise = kabs / pairs;
  out->q_noise_pos = (double)qpos / pairs;
  out->k_noise_pos = (double)kpos / pairs;
  out->alignment = (double)aligned / pairs;
  out->q_vote = vote_agreement(q_neuron, ks, mk, n, 1);
  out->k_vote = vote_agreement(k_neuron, qs, mk, n, -1);

  if (!ref->set && out->alignment >= SPARQ_SIGNGD_ALIGNED) {
    memcpy(ref->q, qs, (size_t)(mk * n));
    memcpy(ref->k, ks, (size_t)(mk * n));
    ref->set = 1;
  }
  out->q_flip = out->k_flip = 0;
  if (ref->set) {
    int64_t qf = 0, kf = 0;
    for (int64_t j = 0; j < mk * n; j++) {
      qf += qs[j] != ref->q[j];
      kf += ks[j] != ref->k[j];
    }
    out->q_flip = (double)qf / pairs;
    out->k_flip = (double)kf / pairs;
  }

  double s11 = 0, s21 = 0;
  for (int64_t i = 0; i < n; i++) {
    const sg_patch x[2] = {sg_patch_get(train, i, 0), sg_patch_get(train, i, 1)};
    double u[2], S[2][2];
    sg_sample_forward(m, v, x, qk, qk + 2 * mk, u, S);
    const int sig = train->signal_pos[i], noi = 1 - sig;
    s11 += S[sig][sig];
    s21 += S[noi][sig];
  }
  out->s11 = s11 / (double)n;
  out->s21 = s21 / (double)n;
}
