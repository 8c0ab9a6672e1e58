/* Evaluation metrics shared by the methods. */
#ifndef SPARQ_EVAL_H
#define SPARQ_EVAL_H

#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Video quality as Sparse VideoGen's metric script computes it (spec
 * sparse-videogen.md §6). Videos are F x C x H x W floats in [0, 1]
 * (frame-major, each frame C x H x W row-major).
 *
 * PSNR: per frame MSE over all C H W values, PSNR_f = 10 log10(1 / MSE_f);
 * the result is the mean of PSNR_f over frames. A frame with MSE 0 counts as
 * SPARQ_PSNR_CAP dB (so identical videos give exactly the cap, and one exact
 * frame cannot make the mean infinite).
 *
 * SSIM: per frame and channel, an 11 x 11 uniform (box) window at stride 1
 * with zero padding of 5 pixels counted in the window averages (the
 * padded zeros enter the means, as a conv2d with padding 5 and a 1/121
 * kernel does), C1 = 0.01^2, C2 = 0.03^2; the SSIM map is averaged over
 * channels and pixels, then over frames. */
#define SPARQ_PSNR_CAP 100.0

sparq_status sparq_video_psnr(const float *a, const float *b, int64_t frames, int64_t channels, int64_t height,
                              int64_t width, double *psnr);
sparq_status sparq_video_ssim(const float *a, const float *b, int64_t frames, int64_t channels, int64_t height,
                              int64_t width, double *ssim);

#ifdef __cplusplus
}
#endif
#endif
