/* 2-D convolution (PyTorch's nn.Conv2d with dilation 1 and groups 1) as
 * im2col + one GEMM, so the arithmetic runs in sparq_sgemm. With
 * R = N HO WO output pixels and CKK = C K K taps, r = (n HO + oy) WO + ox:
 *
 *   colT[c K K + ky K + kx, r] = inp[n, c, oy S - P + ky, ox S - P + kx]
 *                                (0 outside the image)
 *   tmp[OC, R] = w[OC, CKK] colT[CKK, R]
 *   out[n, o, oy, ox] = tmp[o, r] + bias[o]
 *
 * The tap order c K K + ky K + kx is the row-major flattening of a PyTorch
 * weight [OC, C, K, K], so w is used as the [OC, CKK] matrix it already
 * is. Backward runs the same steps in reverse:
 *
 *   dtmp[o, r] = dout[n, o, oy, ox];  dbias[o] += sum_r dtmp[o, r]
 *   dw += dtmp colT^T;  dcolT = w^T dtmp;  dinp += col2im(dcolT)
 *
 * colT is rebuilt from inp in backward rather than kept from the forward:
 * it is the largest buffer (K K times the input) and rebuilding it is a
 * cheap copy next to the GEMMs.
 *
 * Thread-count independence: im2col, the layout copies and col2im own whole
 * rows of colT, whole (n, o) blocks or whole (n, c) input planes; col2im
 * sums the taps of a pixel and the bias gradient its row in a fixed order.
 * The GEMMs are the backend's business, as for the linear layer. */
#include <string.h>

#include "nn/nn_internal.h"
#include "sparq/base.h"
#include "sparq/kernels.h"
#include "sparq/nn.h"

/* Sizes beyond these would overflow the int32 arguments of some GEMM
 * backends long before memory runs out; they also keep every product below
 * in int64 range. */
#define CONV_MAX_DIM ((int64_t)1 << 24)

sparq_status sparq_nn_conv2d_check(const sparq_conv2d_geom *g, int64_t *HO, int64_t *WO) {
  static const char who[] = "sparq_nn_conv2d";
  if (!g) return sparq_fail(SPARQ_ERR_ARG, "%s: NULL geometry", who);
  const int64_t d[] = {g->N, g->C, g->H, g->W, g->OC, g->K, g->stride};
  for (int i = 0; i < 7; i++)
    if (d[i] < 1 || d[i] > CONV_MAX_DIM)
      return sparq_fail(SPARQ_ERR_ARG,
                        "%s: N=%lld C=%lld H=%lld W=%lld OC=%lld K=%lld stride=%lld must each be in 1..%lld", who,
                        (long long)g->N, (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->OC,
                        (long long)g->K, (long long)g->stride, (long long)CONV_MAX_DIM);
  if (g->pad < 0 || g->pad >= g->K)
    return sparq_fail(SPARQ_ERR_ARG, "%s: padding %lld must be in 0..K-1 (K=%lld)", who, (long long)g->pad,
                      (long long)g->K);
  const int64_t hp = g->H + 2 * g->pad, wp = g->W + 2 * g->pad;
  if (hp < g->K || wp < g->K)
    return sparq_fail(SPARQ_ERR_ARG, "%s: kernel %lld is larger than the padded input %lldx%lld", who,
                      (long long)g->K, (long long)hp, (long long)wp);
  const int64_t ho = (hp - g->K) / g->stride + 1, wo = (wp - g->K) / g->stride + 1;
  /* every buffer size below must fit comfortably in size_t and int64 */
  const double rows = (double)g->N * (double)ho * (double)wo;
  const double cols = (double)g->C * (double)g->K * (double)g->K;
  if (rows * (cols + (double)g->OC) > 1e15 || (double)g->N * g->C * g->H * g->W > 1e15)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the problem is too large", who);
  if (HO) *HO = ho;
  if (WO) *WO = wo;
  return SPARQ_OK;
}

size_t sparq_nn_conv2d_work_floats(const sparq_conv2d_geom *g) {
  int64_t ho = 0, wo = 0;
  if (sparq_nn_conv2d_check(g, &ho, &wo)) return 0;
  const size_t R = (size_t)(g->N * ho * wo), CKK = (size_t)(g->C * g->K * g->K);
  return 2 * R * CKK + R * (size_t)g->OC;
}

/* The im2col matrix is kept transposed, colT [CKK, R], so every copy in
 * and out of it runs along an output row (contiguous in both the image and
 * colT) and the GEMM's output comes out channel-major, [OC, R] = [OC, N,
 * HO WO], one contiguous HO WO block per (o, n): NCHW is a block copy away. */

/* colT row q = (c, ky, kx), the columns of image n: WO-long runs per oy. */
static void im2col_block(float *restrict dst, const float *restrict plane, const sparq_conv2d_geom *g, int64_t ky,
                         int64_t kx, int64_t HO, int64_t WO) {
  const int64_t S = g->stride, P = g->pad, H = g->H, W = g->W;
  /* ox with 0 <= ox S - P + kx < W */
  int64_t x0 = P - kx > 0 ? (P - kx + S - 1) / S : 0;
  int64_t x1 = W - 1 + P - kx >= 0 ? (W - 1 + P - kx) / S + 1 : 0;
  if (x1 > WO) x1 = WO;
  if (x0 > x1) x0 = x1;
  for (int64_t oy = 0; oy < HO; oy++) {
    float *restrict d = dst + oy * WO;
    const int64_t iy = oy * S - P + ky;
    if (iy < 0 || iy >= H) {
      for (int64_t ox = 0; ox < WO; ox++) d[ox] = 0.0f;
      continue;
    }
    const float *restrict src = plane + iy * W - P + kx;
    for (int64_t ox = 0; ox < x0; ox++) d[ox] = 0.0f;
    if (S == 1)
      for (int64_t ox = x0; ox < x1; ox++) d[ox] = src[ox];
    else
      for (int64_t ox = x0; ox < x1; ox++) d[ox] = src[ox * S];
    for (int64_t ox = x1; ox < WO; ox++) d[ox] = 0.0f;
  }
}

static void im2col(float *colT, const float *inp, const sparq_conv2d_geom *g, int64_t HO, int64_t WO) {
  const int64_t KK = g->K * g->K, CKK = g->C * KK, HW = g->H * g->W, R = g->N * HO * WO;
  const int64_t jobs = CKK * g->N;
#pragma omp parallel if (R * CKK >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t j = 0; j < jobs; j++) {
      const int64_t q = j / g->N, n = j % g->N, c = q / KK, ky = q % KK / g->K, kx = q % g->K;
      im2col_block(colT + q * R + n * HO * WO, inp + (n * g->C + c) * HW, g, ky, kx, HO, WO);
    }
  }
}

/* dinp plane (n, c) += its taps in dcolT, in the order ky, kx, oy, ox
 * (fixed, so the sums do not depend on the threads). */
static void col2im_plane(float *restrict dplane, const float *restrict dcolT, const sparq_conv2d_geom *g, int64_t c,
                         int64_t n, int64_t HO, int64_t WO) {
  const int64_t K = g->K, S = g->stride, P = g->pad, H = g->H, W = g->W, R = g->N * HO * WO;
  for (int64_t ky = 0; ky < K; ky++)
    for (int64_t kx = 0; kx < K; kx++) {
      const float *restrict src = dcolT + ((c * K + ky) * K + kx) * R + n * HO * WO;
      int64_t x0 = P - kx > 0 ? (P - kx + S - 1) / S : 0;
      int64_t x1 = W - 1 + P - kx >= 0 ? (W - 1 + P - kx) / S + 1 : 0;
      if (x1 > WO) x1 = WO;
      for (int64_t oy = 0; oy < HO; oy++) {
        const int64_t iy = oy * S - P + ky;
        if (iy < 0 || iy >= H) continue;
        float *restrict d = dplane + iy * W - P + kx;
        const float *restrict s = src + oy * WO;
        if (S == 1)
          for (int64_t ox = x0; ox < x1; ox++) d[ox] += s[ox];
        else
          for (int64_t ox = x0; ox < x1; ox++) d[ox * S] += s[ox];
      }
    }
}

static void col2im_add(float *dinp, const float *dcolT, const sparq_conv2d_geom *g, int64_t HO, int64_t WO) {
  const int64_t planes = g->N * g->C, HW = g->H * g->W;
#pragma omp parallel if (planes * HO * WO * g->K * g->K >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; p++) col2im_plane(dinp + p * HW, dcolT, g, p % g->C, p / g->C, HO, WO);
  }
}

/* out [N,OC,HW] = tmp [OC,N,HW] (+ bias[o]), one HW block per (n, o). */
static void blocks_to_nchw(float *out, const float *tmp, const float *bias, int64_t N, int64_t OC, int64_t HW) {
  const int64_t jobs = N * OC;
#pragma omp parallel if (jobs * HW >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t j = 0; j < jobs; j++) {
      const int64_t n = j / OC, o = j % OC;
      float *restrict d = out + j * HW;
      const float *restrict s = tmp + (o * N + n) * HW;
      const float b = bias ? bias[o] : 0.0f;
      for (int64_t i = 0; i < HW; i++) d[i] = s[i] + b;
    }
  }
}

/* tmp [OC,N,HW] = dout [N,OC,HW], and dbias[o] += the sum of row o of tmp
 * (one thread per o, in order: thread-count independent). */
static void nchw_to_blocks(float *tmp, float *dbias, const float *dout, int64_t N, int64_t OC, int64_t HW) {
#pragma omp parallel if (N * OC * HW >= NN_PAR_MIN)
  {
    sparq_thread_set_ftz();
#pragma omp for schedule(static)
    for (int64_t o = 0; o < OC; o++) {
      for (int64_t n = 0; n < N; n++)
        memcpy(tmp + (o * N + n) * HW, dout + (n * OC + o) * HW, (size_t)HW * sizeof(float));
      if (dbias) dbias[o] += nn_row_sum(tmp + o * N * HW, N * HW);
    }
  }
}

sparq_status sparq_nn_conv2d_forward(float *out, float *work, const float *inp, const float *w, const float *bias,
                                     const sparq_conv2d_geom *g) {
  int64_t HO, WO;
  sparq_status st = sparq_nn_conv2d_check(g, &HO, &WO);
  if (st) return st;
  if (!out || !work || !inp || !w) return sparq_fail(SPARQ_ERR_ARG, "sparq_nn_conv2d_forward: NULL argument");
  const int64_t R = g->N * HO * WO, CKK = g->C * g->K * g->K;
  float *colT = work, *tmp = work + 2 * R * CKK;
  im2col(colT, inp, g, HO, WO);
  /* tmp [OC, R] = w [OC, CKK] colT [CKK, R] */
  st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_NO_TRANS, g->OC, R, CKK, 1.0f, w, CKK, colT, R, 0.0f, tmp, R);
  if (st) return st;
  blocks_to_nchw(out, tmp, bias, g->N, g->OC, HO * WO);
  return SPARQ_OK;
}

sparq_status sparq_nn_conv2d_backward(float *dinp, float *dw, float *dbias, float *work, const float *dout,
                                      const float *inp, const float *w, const sparq_conv2d_geom *g) {
  int64_t HO, WO;
  sparq_status st = sparq_nn_conv2d_check(g, &HO, &WO);
  if (st) return st;
  if (!work || !dout) return sparq_fail(SPARQ_ERR_ARG, "sparq_nn_conv2d_backward: NULL work or dout");
  if (dw && !inp) return sparq_fail(SPARQ_ERR_ARG, "sparq_nn_conv2d_backward: dw wanted but inp is NULL");
  if (dinp && !w) return sparq_fail(SPARQ_ERR_ARG, "sparq_nn_conv2d_backward: dinp wanted but w is NULL");
  const int64_t R = g->N * HO * WO, CKK = g->C * g->K * g->K;
  float *colT = work, *dcolT = work + R * CKK, *dtmp = work + 2 * R * CKK;
  nchw_to_blocks(dtmp, dbias, dout, g->N, g->OC, HO * WO);
  if (dw) {
    im2col(colT, inp, g, HO, WO);
    /* dw [OC, CKK] += dtmp [OC, R] colT^T */
    st = sparq_sgemm(SPARQ_NO_TRANS, SPARQ_TRANS, g->OC, CKK, R, 1.0f, dtmp, R, colT, R, 1.0f, dw, CKK);
    if (st) return st;
  }
  if (dinp) {
    /* dcolT [CKK, R] = w^T dtmp */
    st = sparq_sgemm(SPARQ_TRANS, SPARQ_NO_TRANS, CKK, R, g->OC, 1.0f, w, CKK, dtmp, R, 0.0f, dcolT, R);
    if (st) return st;
    col2im_add(dinp, dcolT, g, HO, WO);
  }
  return SPARQ_OK;
}
