/* The evaluation classifier's forward, backward and batched inference,
 * layer by layer over the buffers of classifier_internal.h. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "nn/classifier_internal.h"
#include "sparq/base.h"

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

sparq_status sparq_classifier_forward(sparq_classifier *m, const float *images, const int32_t *labels, int64_t n,
                                      float *loss) {
  static const char who[] = "sparq_classifier_forward";
  if (!m || !images) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL model or images", who);
  if (n < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: n %" PRId64 " must be >= 1", who, n);
  if (labels && !loss) return sparq_fail(SPARQ_ERR_ARG, "%s: labels given but loss is NULL", who);
  const sparq_classifier_config *c = &m->cfg;
  sparq_status s = classifier_reserve(m, n);
  if (s) return s;
  m->n = 0;
  m->has_labels = false;
  const int64_t S = c->image_size, C1 = c->conv1_channels, C2 = c->conv2_channels, F = c->hidden;
  const int64_t K = c->num_classes, flat = C2 * (S / 4) * (S / 4);
  const sparq_conv2d_geom g1 = classifier_geom1(m, n), g2 = classifier_geom2(m, n);
  memcpy(m->x, images, (size_t)(n * S * S) * sizeof(float));
  if ((s = sparq_nn_conv2d_forward(m->a1, m->work, m->x, m->conv1_w->data, m->conv1_b->data, &g1))) return s;
  sparq_nn_relu_forward(m->a1, m->a1, (size_t)(n * C1 * S * S));
  sparq_nn_maxpool2_forward(m->p1, m->arg1, m->a1, n, C1, S, S);
  if ((s = sparq_nn_conv2d_forward(m->a2, m->work, m->p1, m->conv2_w->data, m->conv2_b->data, &g2))) return s;
  sparq_nn_relu_forward(m->a2, m->a2, (size_t)(n * C2 * (S / 2) * (S / 2)));
  sparq_nn_maxpool2_forward(m->p2, m->arg2, m->a2, n, C2, S / 2, S / 2);
  if ((s = sparq_nn_linear_forward(m->h, m->p2, m->fc1_w->data, m->fc1_b->data, n, flat, F))) return s;
  sparq_nn_relu_forward(m->h, m->h, (size_t)(n * F));
  if ((s = sparq_nn_linear_forward(m->logits, m->h, m->fc2_w->data, m->fc2_b->data, n, F, K))) return s;
  /* ignored targets still get their softmax, which inference wants */
  int32_t *t = m->labels;
  if (labels) memcpy(t, labels, (size_t)n * sizeof *t);
  else
    for (int64_t i = 0; i < n; i++) t[i] = -1;
  float l = 0.0f;
  if ((s = sparq_nn_xent_forward(&l, m->probs, m->logits, t, n, K))) return s;
  if (loss) *loss = labels ? l : NAN;
  m->n = n;
  m->has_labels = labels != NULL;
  return SPARQ_OK;
}

sparq_status sparq_classifier_backward(sparq_classifier *m, float dloss) {
  if (!m) return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_backward: NULL model");
  if (!m->has_labels || m->n < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_backward: the last forward had no labels");
  const sparq_classifier_config *c = &m->cfg;
  const int64_t n = m->n, S = c->image_size, C1 = c->conv1_channels, C2 = c->conv2_channels, F = c->hidden;
  const int64_t K = c->num_classes, flat = C2 * (S / 4) * (S / 4);
  const size_t na1 = (size_t)(n * C1 * S * S), na2 = (size_t)(n * C2 * (S / 2) * (S / 2));
  const sparq_conv2d_geom g1 = classifier_geom1(m, n), g2 = classifier_geom2(m, n);
  sparq_status s;
  zero(m->d_logits, (size_t)(n * K));
  sparq_nn_xent_backward(m->d_logits, m->probs, m->labels, n, K, dloss);
  zero(m->d_h, (size_t)(n * F));
  if ((s = sparq_nn_linear_backward(m->d_h, m->fc2_w->grad, m->fc2_b->grad, m->d_logits, m->h, m->fc2_w->data, n, F,
                                    K)))
    return s;
  zero(m->d_hr, (size_t)(n * F));
  sparq_nn_relu_backward(m->d_hr, m->h, m->d_h, (size_t)(n * F));
  zero(m->d_p2, (size_t)(n * flat));
  if ((s = sparq_nn_linear_backward(m->d_p2, m->fc1_w->grad, m->fc1_b->grad, m->d_hr, m->p2, m->fc1_w->data, n, flat,
                                    F)))
    return s;
  zero(m->d_a2, na2);
  sparq_nn_maxpool2_backward(m->d_a2, m->d_p2, m->arg2, n, C2, S / 2, S / 2);
  zero(m->d_a2r, na2);
  sparq_nn_relu_backward(m->d_a2r, m->a2, m->d_a2, na2);
  zero(m->d_p1, na1 / 4);
  if ((s = sparq_nn_conv2d_backward(m->d_p1, m->conv2_w->grad, m->conv2_b->grad, m->work, m->d_a2r, m->p1,
                                    m->conv2_w->data, &g2)))
    return s;
  zero(m->d_a1, na1);
  sparq_nn_maxpool2_backward(m->d_a1, m->d_p1, m->arg1, n, C1, S, S);
  zero(m->d_a1r, na1);
  sparq_nn_relu_backward(m->d_a1r, m->a1, m->d_a1, na1);
  /* the images need no gradient */
  return sparq_nn_conv2d_backward(NULL, m->conv1_w->grad, m->conv1_b->grad, m->work, m->d_a1r, m->x,
                                  m->conv1_w->data, &g1);
}

sparq_status sparq_classifier_features(sparq_classifier *m, const float *images, int64_t n, float *feats,
                                       float *probs) {
  if (!m || n < 0 || (n > 0 && !images))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_features: NULL model or images, or n < 0");
  const sparq_classifier_config *c = &m->cfg;
  const int64_t img = c->image_size * c->image_size, F = c->hidden, K = c->num_classes;
  for (int64_t i0 = 0; i0 < n; i0 += SPARQ_CLASSIFIER_CHUNK) {
    const int64_t b = n - i0 < SPARQ_CLASSIFIER_CHUNK ? n - i0 : SPARQ_CLASSIFIER_CHUNK;
    sparq_status s = sparq_classifier_forward(m, images + i0 * img, NULL, b, NULL);
    if (s) return s;
    if (feats) memcpy(feats + i0 * F, m->h, (size_t)(b * F) * sizeof(float));
    if (probs) memcpy(probs + i0 * K, m->probs, (size_t)(b * K) * sizeof(float));
  }
  return SPARQ_OK;
}

sparq_status sparq_classifier_evaluate(sparq_classifier *m, const float *images, const int32_t *labels, int64_t n,
                                       double *loss, double *accuracy) {
  if (!m || !images || !labels || n < 1)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_evaluate: NULL model, images or labels, or n < 1");
  const sparq_classifier_config *c = &m->cfg;
  const int64_t img = c->image_size * c->image_size, K = c->num_classes;
  double sum = 0.0;
  int64_t correct = 0;
  for (int64_t i0 = 0; i0 < n; i0 += SPARQ_CLASSIFIER_CHUNK) {
    const int64_t b = n - i0 < SPARQ_CLASSIFIER_CHUNK ? n - i0 : SPARQ_CLASSIFIER_CHUNK;
    for (int64_t i = 0; i < b; i++)
      if (labels[i0 + i] < 0 || labels[i0 + i] >= K)
        return sparq_fail(SPARQ_ERR_ARG, "sparq_classifier_evaluate: label %d of image %" PRId64 " is outside 0..%" PRId64,
                          (int)labels[i0 + i], i0 + i, K - 1);
    float l = 0.0f;
    sparq_status s = sparq_classifier_forward(m, images + i0 * img, labels + i0, b, &l);
    if (s) return s;
    sum += (double)l * (double)b;
    for (int64_t i = 0; i < b; i++) {
      const float *row = m->logits + i * K;
      int64_t best = 0;
      for (int64_t k = 1; k < K; k++)
        if (row[k] > row[best]) best = k;
      correct += best == labels[i0 + i];
    }
  }
  if (loss) *loss = sum / (double)n;
  if (accuracy) *accuracy = (double)correct / (double)n;
  return SPARQ_OK;
}
