/* The sparq_image struct and float-to-byte conversion. */
#include <math.h>
#include <string.h>

#include "io/image_internal.h"
#include "sparq/base.h"

sparq_status image_check_shape(const char *who, int height, int width, int channels, size_t *bytes) {
  if (height < 1 || height > SPARQ_IMAGE_MAX_SIDE || width < 1 || width > SPARQ_IMAGE_MAX_SIDE)
    return sparq_fail(SPARQ_ERR_ARG, "%s: image size %d x %d is outside 1..%d", who, height, width,
                      SPARQ_IMAGE_MAX_SIDE);
  if (channels != 1 && channels != 3)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %d channels (expected 1 for gray or 3 for RGB)", who, channels);
  /* Cannot overflow: 32768^2 * 3 < 2^32 <= SIZE_MAX on every target we build. */
  *bytes = (size_t)height * (size_t)width * (size_t)channels;
  return SPARQ_OK;
}

sparq_status sparq_image_alloc(sparq_image *img, int height, int width, int channels) {
  size_t bytes = 0;
  memset(img, 0, sizeof *img);
  sparq_status st = image_check_shape("sparq_image_alloc", height, width, channels, &bytes);
  if (st) return st;
  img->pixels = sparq_calloc(bytes, 1, "sparq_image_alloc");
  if (!img->pixels) return SPARQ_ERR_NOMEM;
  img->height = height;
  img->width = width;
  img->channels = channels;
  return SPARQ_OK;
}

void sparq_image_free(sparq_image *img) {
  if (!img) return;
  sparq_free(img->pixels);
  memset(img, 0, sizeof *img);
}

sparq_status sparq_image_u8_from_f32(uint8_t *dst, const float *src, int height, int width, int channels,
                                     float lo, float hi, bool src_chw) {
  size_t bytes = 0;
  sparq_status st = image_check_shape("sparq_image_u8_from_f32", height, width, channels, &bytes);
  if (st) return st;
  if (!dst || !src) return sparq_fail(SPARQ_ERR_ARG, "sparq_image_u8_from_f32: NULL buffer");
  if (!isfinite(lo) || !isfinite(hi) || !(hi > lo))
    return sparq_fail(SPARQ_ERR_ARG, "sparq_image_u8_from_f32: range [%g, %g] is empty or not finite", lo, hi);
  /* double keeps (x - lo) * scale exact enough that u / 127.5 - 1 with
   * [-1, 1] lands within 1e-5 of u, which rounding then recovers. */
  const double scale = 255.0 / ((double)hi - (double)lo);
  const size_t plane = (size_t)height * (size_t)width;
  for (size_t p = 0; p < plane; p++) {
    for (int c = 0; c < channels; c++) {
      float x = src_chw ? src[(size_t)c * plane + p] : src[p * (size_t)channels + (size_t)c];
      double v = ((double)x - lo) * scale;
      uint8_t u;
      if (!(v > 0)) u = 0; /* also NaN */
      else if (v >= 255) u = 255;
      else u = (uint8_t)(v + 0.5);
      dst[p * (size_t)channels + (size_t)c] = u;
    }
  }
  return SPARQ_OK;
}
