/* The evaluation classifier's private state, shared by its construction
 * (classifier_model.c) and its forward/backward (classifier_forward.c). */
#ifndef SPARQ_NN_CLASSIFIER_INTERNAL_H
#define SPARQ_NN_CLASSIFIER_INTERNAL_H

#include "sparq/classifier.h"

struct sparq_classifier {
  sparq_classifier_config cfg;
  sparq_param_list params;
  sparq_param *conv1_w, *conv1_b, *conv2_w, *conv2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;

  /* Activations and backward scratch for up to cap_n images (one
   * allocation, `arena`); shapes for n images, S the image side:
   *   x      [n,1,S,S]       a copy of the input (conv1's backward reads it)
   *   a1     [n,C1,S,S]      conv1 output, ReLU applied in place
   *   p1     [n,C1,S/2,S/2]  pooled, arg1 its argmax
   *   a2     [n,C2,S/2,S/2]  conv2 output after ReLU
   *   p2     [n,C2,S/4,S/4]  pooled (= fc1's input, flattened), arg2
   *   h      [n,F]           fc1 output after ReLU: the feature
   *   logits, probs [n,classes]
   *   d_*    gradients of the same shapes; d_a1r, d_a2r, d_hr the gradients
   *          before the ReLU (backward accumulates, so they are separate)
   *   work   the larger conv2d work area of the two convolutions */
  int64_t cap_n;
  float *arena;
  int32_t *arg1, *arg2, *labels;
  float *x, *a1, *p1, *a2, *p2, *h, *logits, *probs;
  float *d_logits, *d_h, *d_hr, *d_p2, *d_a2, *d_a2r, *d_p1, *d_a1, *d_a1r, *work;

  int64_t n;        /* images in the last forward */
  bool has_labels;  /* the last forward had labels (backward allowed) */

  char meta_values[5][32];
  sparq_metadata_entry meta[6];
};

/* The two convolutions' geometry for n images. */
sparq_conv2d_geom classifier_geom1(const sparq_classifier *m, int64_t n);
sparq_conv2d_geom classifier_geom2(const sparq_classifier *m, int64_t n);
/* Makes sure the buffers hold n images (grows, never shrinks). */
sparq_status classifier_reserve(sparq_classifier *m, int64_t n);

#endif
