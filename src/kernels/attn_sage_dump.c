/* --dump: the Sage pre-pass intermediates as .npy files for inspection
 * (issue #3 §4). Everything in the caller's head dim d (the padding columns
 * are dropped) and head-major order:
 *   q_hat.npy   int8 [B, Hq, Nq, d]    quantized (smoothed) Q, -qmax..qmax
 *   q_scale.npy f32  [B, Hq, Nq]       its scale per token (group scale repeated)
 *   k_hat.npy   int8 [B, Hkv, Nk, d]
 *   k_scale.npy f32  [B, Hkv, Nk]
 *   v_scale.npy f32  [B, Hkv, d]       V scale per channel (1 where V is unscaled)
 *   k_mean.npy  f32  [B, Hkv, d]       with smooth K
 *   q_mean.npy  f32  [B, Hq, ceil(Nq/128), d]   with smooth Q
 *   delta_s.npy f32  [B, Hq, ceil(Nq/128), Nk]  with smooth Q
 *   v_mean.npy  f32  [B, Hkv, d]       with smooth V */
#include <stdio.h>
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"
#include "sparq/io.h"

static sparq_status write_npy(const char *dir, const char *name, void *data, sparq_dtype dtype, int ndim,
                              const int64_t *shape) {
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof path)
    return sparq_fail(SPARQ_ERR_ARG, "attn_forward_sage: dump_dir '%.64s...' is too long", dir);
  sparq_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data, t.dtype = dtype, t.ndim = ndim;
  for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
  return sparq_npy_write(path, &t);
}

/* Copies `rows` rows of `cols` floats, `stride` apart, back to back. */
static void gather_f32(float *dst, const float *src, int64_t rows, int64_t cols, int64_t stride) {
  for (int64_t r = 0; r < rows; r++) memcpy(dst + r * cols, src + r * stride, (size_t)cols * sizeof(float));
}

sparq_status sage_dump(const attn_problem *p, const sage_config *cfg, const sage_q *qs, const sage_kv *kvs,
                       int64_t nq_pad, int64_t nk_pad, int64_t nqb) {
  (void)nq_pad;
  const char *dir = p->opts->dump_dir;
  const int64_t B = p->batch, Hq = p->q_heads, Hk = p->kv_heads, nq = p->q_len, nk = p->kv_len;
  const int64_t d = p->head_dim, dp = p->dp;
  const int64_t nmax = nq > nk ? nq : nk, big = nmax * d > nqb * nk ? nmax * d : nqb * nk;
  size_t bytes;
  if (!sparq_size_mul((size_t)(B * (Hq > Hk ? Hq : Hk)), (size_t)big, &bytes) ||
      !sparq_size_mul(bytes, sizeof(float), &bytes))
    return sparq_fail(SPARQ_ERR_NOMEM, "attn_forward_sage: dump buffer size overflows");
  unsigned char *buf = sparq_alloc(bytes, "sage dump buffer");
  if (!buf) return SPARQ_ERR_NOMEM;
  float *f = (float *)buf;
  int8_t *i8 = (int8_t *)buf;
  sparq_status st = SPARQ_OK;

  for (int64_t h = 0; h < B * Hq; h++)
    for (int64_t t = 0; t < nq; t++)
      for (int64_t c = 0; c < d; c++) i8[(h * nq + t) * d + c] = (int8_t)(qs[h].q_hat[t * dp + c] - 128);
  const int64_t q_shape[] = {B, Hq, nq, d};
  if ((st = write_npy(dir, "q_hat.npy", i8, SPARQ_I8, 4, q_shape)) != SPARQ_OK) goto done;
  for (int64_t h = 0; h < B * Hq; h++) memcpy(f + h * nq, qs[h].q_delta, (size_t)nq * sizeof(float));
  if ((st = write_npy(dir, "q_scale.npy", f, SPARQ_F32, 3, q_shape)) != SPARQ_OK) goto done;

  for (int64_t h = 0; h < B * Hk; h++)
    for (int64_t j = 0; j < nk; j++)
      for (int64_t c = 0; c < d; c++) i8[(h * nk + j) * d + c] = sage_packed_k_at(kvs[h].k_hat, dp, j, c);
  const int64_t k_shape[] = {B, Hk, nk, d};
  if ((st = write_npy(dir, "k_hat.npy", i8, SPARQ_I8, 4, k_shape)) != SPARQ_OK) goto done;
  for (int64_t h = 0; h < B * Hk; h++) memcpy(f + h * nk, kvs[h].k_scale, (size_t)nk * sizeof(float));
  if ((st = write_npy(dir, "k_scale.npy", f, SPARQ_F32, 3, k_shape)) != SPARQ_OK) goto done;

  const int64_t c_shape[] = {B, Hk, d};
  for (int64_t h = 0; h < B * Hk; h++) memcpy(f + h * d, kvs[h].v_scale, (size_t)d * sizeof(float));
  if ((st = write_npy(dir, "v_scale.npy", f, SPARQ_F32, 3, c_shape)) != SPARQ_OK) goto done;
  if (cfg->smooth_k) {
    for (int64_t h = 0; h < B * Hk; h++) memcpy(f + h * d, kvs[h].k_mean, (size_t)d * sizeof(float));
    if ((st = write_npy(dir, "k_mean.npy", f, SPARQ_F32, 3, c_shape)) != SPARQ_OK) goto done;
  }
  if (cfg->smooth_v) {
    for (int64_t h = 0; h < B * Hk; h++) memcpy(f + h * d, kvs[h].v_mean, (size_t)d * sizeof(float));
    if ((st = write_npy(dir, "v_mean.npy", f, SPARQ_F32, 3, c_shape)) != SPARQ_OK) goto done;
  }
  if (cfg->smooth_q) {
    const int64_t m_shape[] = {B, Hq, nqb, d}, s_shape[] = {B, Hq, nqb, nk};
    for (int64_t h = 0; h < B * Hq; h++) gather_f32(f + h * nqb * d, qs[h].q_mean, nqb, d, dp);
    if ((st = write_npy(dir, "q_mean.npy", f, SPARQ_F32, 4, m_shape)) != SPARQ_OK) goto done;
    for (int64_t h = 0; h < B * Hq; h++) gather_f32(f + h * nqb * nk, qs[h].ds, nqb, nk, nk_pad);
    if ((st = write_npy(dir, "delta_s.npy", f, SPARQ_F32, 4, s_shape)) != SPARQ_OK) goto done;
  }
done:
  sparq_free(buf);
  return st;
}
