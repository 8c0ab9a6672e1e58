/* PSNR and box-window SSIM of videos, as SVG's metric script defines them. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "sparq/base.h"
#include "sparq/eval.h"

static sparq_status check(const char *who, const float *a, const float *b, int64_t F, int64_t C, int64_t H,
                          int64_t W) {
  if (!a || !b) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL video", who);
  if (F < 1 || C < 1 || H < 1 || W < 1 || F > (1 << 20) || C > 64 || H > (1 << 15) || W > (1 << 15))
    return sparq_fail(SPARQ_ERR_ARG, "%s: shape %" PRId64 " x %" PRId64 " x %" PRId64 " x %" PRId64 " is out of range",
                      who, F, C, H, W);
  return SPARQ_OK;
}

sparq_status sparq_video_psnr(const float *a, const float *b, int64_t F, int64_t C, int64_t H, int64_t W,
                              double *psnr) {
  sparq_status s = check("sparq_video_psnr", a, b, F, C, H, W);
  if (s) return s;
  const int64_t n = C * H * W;
  double sum = 0;
  for (int64_t f = 0; f < F; f++) {
    double mse = 0;
    for (int64_t i = 0; i < n; i++) {
      double e = (double)a[f * n + i] - b[f * n + i];
      mse += e * e;
    }
    mse /= (double)n;
    sum += mse > 0 ? 10.0 * log10(1.0 / mse) : SPARQ_PSNR_CAP;
  }
  *psnr = sum / (double)F;
  return SPARQ_OK;
}

/* Box sums over the 11 x 11 window around every pixel with zero padding:
 * out[y][x] = sum over |dy|, |dx| <= 5 of in[y+dy][x+dx] (0 outside). */
static void box_sum(const double *in, double *tmp, double *out, int64_t H, int64_t W) {
  for (int64_t y = 0; y < H; y++)
    for (int64_t x = 0; x < W; x++) {
      double s = 0;
      for (int64_t dx = -5; dx <= 5; dx++)
        if (x + dx >= 0 && x + dx < W) s += in[y * W + x + dx];
      tmp[y * W + x] = s;
    }
  for (int64_t y = 0; y < H; y++)
    for (int64_t x = 0; x < W; x++) {
      double s = 0;
      for (int64_t dy = -5; dy <= 5; dy++)
        if (y + dy >= 0 && y + dy < H) s += tmp[(y + dy) * W + x];
      out[y * W + x] = s;
    }
}

sparq_status sparq_video_ssim(const float *a, const float *b, int64_t F, int64_t C, int64_t H, int64_t W,
                              double *ssim) {
  sparq_status s = check("sparq_video_ssim", a, b, F, C, H, W);
  if (s) return s;
  const int64_t n = H * W;
  double *buf = malloc((size_t)n * 11 * sizeof(double));
  if (!buf) return sparq_fail(SPARQ_ERR_NOMEM, "sparq_video_ssim: out of memory for a %" PRId64 " x %" PRId64 " frame", H, W);
  double *x = buf, *y = buf + n, *xx = buf + 2 * n, *yy = buf + 3 * n, *xy = buf + 4 * n, *tmp = buf + 5 * n;
  double *mx = buf + 6 * n, *my = buf + 7 * n, *sxx = buf + 8 * n, *syy = buf + 9 * n, *sxy = buf + 10 * n;
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03, inv = 1.0 / 121.0;
  double total = 0;
  for (int64_t f = 0; f < F; f++) {
    double frame = 0;
    for (int64_t c = 0; c < C; c++) {
      const float *pa = a + (f * C + c) * n, *pb = b + (f * C + c) * n;
      for (int64_t i = 0; i < n; i++) {
        x[i] = pa[i], y[i] = pb[i];
        xx[i] = x[i] * x[i], yy[i] = y[i] * y[i], xy[i] = x[i] * y[i];
      }
      box_sum(x, tmp, mx, H, W);
      box_sum(y, tmp, my, H, W);
      box_sum(xx, tmp, sxx, H, W);
      box_sum(yy, tmp, syy, H, W);
      box_sum(xy, tmp, sxy, H, W);
      double sum = 0;
      for (int64_t i = 0; i < n; i++) {
        double ux = mx[i] * inv, uy = my[i] * inv;
        double vx = sxx[i] * inv - ux * ux, vy = syy[i] * inv - uy * uy, cov = sxy[i] * inv - ux * uy;
        sum += ((2 * ux * uy + c1) * (2 * cov + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
      }
      frame += sum / (double)n;
    }
    total += frame / (double)C;
  }
  free(buf);
  *ssim = total / (double)F;
  return SPARQ_OK;
}
