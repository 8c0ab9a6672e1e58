/* The Sage pre-pass (spec §2.1-2.3, §2.6, §5): smoothing means, dS, group
 * quantization of Q and K, the vpdpbusd packing of K-hat and the PV operand
 * of V. All O(N d) per head, in a fixed order, so results never depend on
 * the thread that runs a head. */
#include <float.h>
#include <string.h>

#include "kernels/attn_sage_internal.h"
#include "sparq/base.h"
#include "sparq/num.h"

/* ------------------------------------------------------------ groups */

int64_t sage_q_group(sparq_attn_granularity g, int64_t t) {
  switch (g) {
    case SPARQ_ATTN_GRAN_PER_BLOCK: return t / SAGE_QBLOCK;
    case SPARQ_ATTN_GRAN_PER_WARP: return t / 32;
    case SPARQ_ATTN_GRAN_PER_THREAD: return (t / 32) * 8 + t % 8; /* 8 groups of 4 tokens per 32-token slice */
    default: return t;
  }
}

int64_t sage_k_group(sparq_attn_granularity g, int64_t t) {
  switch (g) {
    case SPARQ_ATTN_GRAN_PER_BLOCK:
    case SPARQ_ATTN_GRAN_PER_WARP: return t / 64;
    case SPARQ_ATTN_GRAN_PER_THREAD: return (t / 64) * 4 + (t % 8) / 2; /* tokens {8j+2g, 8j+2g+1} of a 64-block */
    default: return t;
  }
}

int64_t sage_q_group_count(sparq_attn_granularity g, int64_t n) {
  switch (g) {
    case SPARQ_ATTN_GRAN_PER_BLOCK: return (n + SAGE_QBLOCK - 1) / SAGE_QBLOCK;
    case SPARQ_ATTN_GRAN_PER_WARP: return (n + 31) / 32;
    case SPARQ_ATTN_GRAN_PER_THREAD: return (n + 31) / 32 * 8;
    default: return n;
  }
}

int64_t sage_k_group_count(sparq_attn_granularity g, int64_t n) {
  switch (g) {
    case SPARQ_ATTN_GRAN_PER_BLOCK:
    case SPARQ_ATTN_GRAN_PER_WARP: return (n + 63) / 64;
    case SPARQ_ATTN_GRAN_PER_THREAD: return (n + 63) / 64 * 4;
    default: return n;
  }
}

/* ---------------------------------------------------------- smoothing */

bool sage_row_finite_ref(const float *x, int64_t dp) {
  /* integer test: DAZ cannot change it and NaN needs no float compare */
  uint32_t bad = 0;
  for (int64_t c = 0; c < dp; c++) bad |= (f32_bits(x[c]) & 0x7F800000u) == 0x7F800000u;
  return !bad;
}

void sage_row_add_f64_ref(const float *x, int64_t dp, double *acc) {
  for (int64_t c = 0; c < dp; c++) acc[c] += x[c];
}

/* The row kernels of this file, picked once per call. */
typedef struct prep_kernels {
  bool (*finite)(const float *x, int64_t dp);
  void (*add_f64)(const float *x, int64_t dp, double *acc);
  float (*absmax)(const float *x, const float *s, int64_t dp);
  void (*quant)(const float *x, const float *s, int64_t dp, float delta, float qmax, int8_t *q);
} prep_kernels;

static prep_kernels pick(void) {
  prep_kernels k = {sage_row_finite_ref, sage_row_add_f64_ref, sage_row_absmax_ref, sage_row_quant_ref};
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() == SPARQ_ISA_AVX512)
    k = (prep_kernels){sage_row_finite_avx512, sage_row_add_f64_avx512, sage_row_absmax_avx512,
                       sage_row_quant_avx512};
#endif
  return k;
}

void sage_mean_rows(const float *x, int64_t n, int64_t dp, float *mean) {
  const prep_kernels k = pick();
  double acc[ATTN_MAX_DIM] = {0}; /* per channel, in row order */
  int64_t count = 0;
  for (int64_t t = 0; t < n; t++) {
    if (!k.finite(x + t * dp, dp)) continue;
    count++;
    k.add_f64(x + t * dp, dp, acc);
  }
  for (int64_t c = 0; c < dp; c++) mean[c] = count ? (float)(acc[c] / (double)count) : 0.0f;
}

void sage_delta_s(const float *q_mean, int64_t nqb, const float *k, const float *k_mean, int64_t nk,
                  int64_t nk_pad, int64_t dp, float *ds) {
  for (int64_t b = 0; b < nqb; b++) {
    const float *qm = q_mean + b * dp;
    float *row = ds + b * nk_pad;
    for (int64_t j = 0; j < nk; j++) {
      double acc = 0;
      for (int64_t c = 0; c < dp; c++) acc += (double)qm[c] * (double)(k[j * dp + c] - k_mean[c]);
      row[j] = (float)acc;
    }
    for (int64_t j = nk; j < nk_pad; j++) row[j] = 0.0f;
  }
}

/* ------------------------------------------------------- quantization */

/* Round half to even for |v| < 2^22 without the current rounding mode's
 * help beyond the default nearest-even (which sparq never changes). */
static inline float rne(float v) { return (v + 12582912.0f) - 12582912.0f; }

static inline float quantize_one(float y, float delta, float qmax) {
  float v = rne(y / delta);
  return v > qmax ? qmax : v < -qmax ? -qmax : v;
}

float sage_row_absmax_ref(const float *x, const float *s, int64_t dp) {
  float m = 0.0f;
  for (int64_t c = 0; c < dp; c++) {
    float y = fabsf(s ? x[c] - s[c] : x[c]);
    m = y > m ? y : m;
  }
  return m;
}

void sage_row_quant_ref(const float *x, const float *s, int64_t dp, float delta, float qmax, int8_t *q) {
  for (int64_t c = 0; c < dp; c++) q[c] = (int8_t)quantize_one(s ? x[c] - s[c] : x[c], delta, qmax);
}

void sage_quantize_rows(const float *x, int64_t n, int64_t dp, const float *sub, const float *sub_rows, int qmax,
                        sparq_attn_granularity g, bool is_q, float *amax, int8_t *q, float *scale) {
  const prep_kernels k = pick();
  const float fq = (float)qmax;
  /* per token a row is its own group: its max comes in the second pass */
  const bool per_token = g == SPARQ_ATTN_GRAN_PER_TOKEN;
  if (!per_token) {
    const int64_t ng = is_q ? sage_q_group_count(g, n) : sage_k_group_count(g, n);
    for (int64_t i = 0; i < ng; i++) amax[i] = 0.0f;
    for (int64_t t = 0; t < n; t++) {
      if (!k.finite(x + t * dp, dp)) continue;
      const float *s = sub ? sub : sub_rows ? sub_rows + (t / SAGE_QBLOCK) * dp : NULL;
      float *a = &amax[is_q ? sage_q_group(g, t) : sage_k_group(g, t)];
      float m = k.absmax(x + t * dp, s, dp);
      *a = m > *a ? m : *a;
    }
  }
  for (int64_t t = 0; t < n; t++) {
    int8_t *row = q + t * dp;
    if (!k.finite(x + t * dp, dp)) {
      memset(row, 0, (size_t)dp);
      scale[t] = NAN;
      continue;
    }
    const float *s = sub ? sub : sub_rows ? sub_rows + (t / SAGE_QBLOCK) * dp : NULL;
    const float m = per_token ? k.absmax(x + t * dp, s, dp) : amax[is_q ? sage_q_group(g, t) : sage_k_group(g, t)];
    /* spec §2.3: delta = max|x| / qmax + 1e-7 (the epsilon keeps an all-zero group finite) */
    const float delta = m / fq + 1e-7f;
    scale[t] = delta;
    k.quant(x + t * dp, s, dp, delta, fq, row);
  }
}

void sage_pack_k_ref(const int8_t *k_hat, int64_t nk, int64_t nk_pad, int64_t dp, int8_t *packed, int32_t *corr) {
  /* written in packed order, 4 bytes (one key, 4 channels) at a time */
  int8_t *dst = packed;
  for (int64_t g = 0; g < nk_pad / 16; g++)
    for (int64_t c4 = 0; c4 < dp / 4; c4++)
      for (int64_t j = g * 16; j < g * 16 + 16; j++, dst += 4) {
        if (j < nk) memcpy(dst, k_hat + j * dp + 4 * c4, 4);
        else memset(dst, 0, 4);
      }
  for (int64_t j = 0; j < nk_pad; j++) {
    int32_t sum = 0;
    for (int64_t c = 0; j < nk && c < dp; c++) sum += k_hat[j * dp + c];
    corr[j] = 128 * sum;
  }
}

void sage_pack_k(const int8_t *k_hat, int64_t nk, int64_t nk_pad, int64_t dp, int8_t *packed, int32_t *corr) {
#ifdef SPARQ_HAVE_X86_SIMD
  if (sparq_isa_active() == SPARQ_ISA_AVX512) {
    sage_pack_k_avx512(k_hat, nk, nk_pad, dp, packed, corr);
    return;
  }
#endif
  sage_pack_k_ref(k_hat, nk, nk_pad, dp, packed, corr);
}

void sage_prepare_k_residual(const float *k, const float *mean, int64_t nk, int64_t nk_pad, int64_t dp,
                             sage_kv *kv) {
  int8_t hat[256], lo[256];
  float sub[256];
  for (int64_t c = 0; c < dp; c++) sub[c] = mean ? mean[c] : 0.0f;
  for (int64_t j = 0; j < nk_pad; j++) {
    /* key j's 4-channel groups in sage_pack_k's layout */
    const size_t base = (size_t)((j / 16) * (dp / 4)) * 64 + (size_t)(j % 16) * 4;
    const float delta = j < nk ? kv->k_scale[j] : 0.0f;
    int32_t sum = 0;
    if (delta > 0.0f) { /* else padding, or a non-finite row (dK NaN): K-lo 0 */
      for (int64_t c4 = 0; c4 < dp / 4; c4++) memcpy(hat + 4 * c4, kv->k_hat + base + (size_t)c4 * 64, 4);
      const float inv = 1.0f / delta, *x = k + j * dp;
      for (int64_t c = 0; c < dp; c++) {
        /* the residual of round(x / dK) is within 1/2, so 128 times it
         * rounds into [-64, 64]; the clamp only guards the last ulp */
        float r = ((x[c] - sub[c]) * inv - (float)hat[c]) * 128.0f;
        r = (r + 12582912.0f) - 12582912.0f; /* round half to even */
        r = r > 64.0f ? 64.0f : r;
        r = r < -64.0f ? -64.0f : r;
        lo[c] = (int8_t)r;
        sum += lo[c];
      }
    } else {
      memset(lo, 0, (size_t)dp);
    }
    for (int64_t c4 = 0; c4 < dp / 4; c4++) memcpy(kv->k_lo + base + (size_t)c4 * 64, lo + 4 * c4, 4);
    kv->k_corr_fine[j] = 128 * kv->k_corr[j] + 128 * sum;
    kv->k_scale_fine[j] = kv->k_scale[j] / 128.0f;
  }
}

/* ---------------------------------------------------------------- V */

/* Per-channel max |y| over finite values; sets *nonfinite[c] when channel c
 * holds a NaN or inf. */
static void channel_amax(const float *y, int64_t nk, int64_t dp, float *amax, bool *nonfinite) {
  for (int64_t c = 0; c < dp; c++) amax[c] = 0.0f, nonfinite[c] = false;
  for (int64_t t = 0; t < nk; t++)
    for (int64_t c = 0; c < dp; c++) {
      uint32_t u = f32_bits(y[t * dp + c]) & 0x7FFFFFFFu;
      if (u >= 0x7F800000u) {
        nonfinite[c] = true;
        continue;
      }
      float a = bits_f32(u);
      amax[c] = a > amax[c] ? a : amax[c];
    }
}

/* Writes one converted row j of V-hat into the kind's layout. */
static void store_v_row(sage_pv_kind kind, const uint16_t *row16, const int8_t *row8, int64_t j, int64_t dp,
                        void *v_hat) {
  switch (kind) {
    case SAGE_PV_BF16: {
      uint16_t *dst = (uint16_t *)v_hat + (j / 2) * dp * 2 + j % 2; /* [key pair][channel][2] */
      for (int64_t c = 0; c < dp; c++) dst[2 * c] = row16[c];
      break;
    }
    case SAGE_PV_U8: {
      int8_t *dst = (int8_t *)v_hat + (j / 4) * dp * 4 + j % 4; /* [key quad][channel][4] */
      for (int64_t c = 0; c < dp; c++) dst[4 * c] = row8[c];
      break;
    }
    case SAGE_PV_F16: memcpy((uint16_t *)v_hat + j * dp, row16, (size_t)dp * sizeof(uint16_t)); break;
  }
}

void sage_pack_v_bf16_ref(const float *v, int64_t nk, int64_t nk_pad, int64_t dp, uint16_t *dst) {
  for (int64_t j = 0; j < nk_pad; j++)
    for (int64_t c = 0; c < dp; c++) /* [key pair][channel][2] */
      dst[(j / 2) * dp * 2 + 2 * c + j % 2] = j < nk ? sparq_bf16_from_f32(v[j * dp + c]) : 0;
}

void sage_prepare_v(const sage_config *cfg, const float *v, int64_t nk, int64_t nk_pad, int64_t dp, float *tmp,
                    sage_kv *kv) {
  const float range = cfg->round == SAGE_ROUND_U8 ? 127.0f : cfg->v_range;
  for (int64_t c = 0; c < dp; c++) kv->v_scale[c] = 1.0f;
  if (cfg->smooth_v) sage_mean_rows(v, nk, dp, kv->v_mean);
  else memset(kv->v_mean, 0, (size_t)dp * sizeof(float));
  /* V' = (V - v_mean) / dV goes through tmp, unless it is V itself */
  const float *y = v;
  if (cfg->smooth_v || range > 0) {
    for (int64_t t = 0; t < nk; t++)
      for (int64_t c = 0; c < dp; c++) tmp[t * dp + c] = v[t * dp + c] - kv->v_mean[c];
    y = tmp;
  }

  /* v_scale: dV = max|V'| / Vr per channel; 1 where V stays unscaled or a
   * channel is all zero (the padding channels) */
  if (range > 0) {
    bool nonfinite[ATTN_MAX_DIM];
    float amax[ATTN_MAX_DIM];
    channel_amax(tmp, nk, dp, amax, nonfinite);
    for (int64_t c = 0; c < dp; c++) {
      float sc = amax[c] > 0 ? amax[c] / range : 1.0f;
      kv->v_scale[c] = sc < FLT_MIN ? FLT_MIN : sc;
      /* s8 cannot hold a NaN: poison the channel instead, as exact attention would */
      if (cfg->round == SAGE_ROUND_U8 && nonfinite[c]) kv->v_scale[c] = NAN;
    }
    for (int64_t t = 0; t < nk; t++)
      for (int64_t c = 0; c < dp; c++) tmp[t * dp + c] /= kv->v_scale[c];
  }

  if (cfg->round == SAGE_ROUND_BF16 && cfg->pv == SAGE_PV_BF16) { /* sage_cpu's default: the hot case */
#ifdef SPARQ_HAVE_X86_SIMD
    if (sparq_isa_active() == SPARQ_ISA_AVX512) {
      sage_pack_v_bf16_avx512(y, nk, nk_pad, dp, kv->v_hat);
      return;
    }
#endif
    sage_pack_v_bf16_ref(y, nk, nk_pad, dp, kv->v_hat);
    return;
  }
  const size_t elems = (size_t)(nk_pad * dp);
  memset(kv->v_hat, 0, cfg->pv == SAGE_PV_U8 ? elems : elems * sizeof(uint16_t));
  uint16_t row16[ATTN_MAX_DIM];
  uint8_t codes[ATTN_MAX_DIM];
  int8_t row8[ATTN_MAX_DIM];
  for (int64_t t = 0; t < nk; t++) {
    const float *yt = y + t * dp;
    switch (cfg->round) {
      case SAGE_ROUND_U8:
        for (int64_t c = 0; c < dp; c++)
          row8[c] = (f32_bits(yt[c]) & 0x7FFFFFFFu) >= 0x7F800000u ? 0 : (int8_t)quantize_one(yt[c], 1.0f, 127.0f);
        break;
      case SAGE_ROUND_E4M3:
        /* E4M3 values are exact in BF16 and FP16 alike */
        sparq_f32_to_e4m3_n(yt, codes, (size_t)dp);
        for (int64_t c = 0; c < dp; c++) {
          float e = sparq_e4m3_to_f32(codes[c]);
          row16[c] = cfg->pv == SAGE_PV_BF16 ? sparq_bf16_from_f32(e) : sparq_f16_from_f32(e);
        }
        break;
      case SAGE_ROUND_BF16: sparq_f32_to_bf16_n(yt, row16, (size_t)dp); break;
      case SAGE_ROUND_F16: sparq_f32_to_f16_n(yt, row16, (size_t)dp); break;
    }
    store_v_row(cfg->pv, row16, row8, t, dp, kv->v_hat);
  }
}
