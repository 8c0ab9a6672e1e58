/* The machine's peak arithmetic rates, measured rather than looked up, so
 * "fraction of peak" means the same thing on every host (clock, SMT, VM).
 * Each probe runs independent register-only FMA chains: enough chains to
 * cover latency x issue width, no loads or stores inside the loop. */
#include <omp.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/kernels.h"

#ifdef SPARQ_HAVE_X86_SIMD
#include <immintrin.h>
/* __m512h and _Float16 arrived in gcc 12 and clang 15 */
#if (defined(__clang__) && __clang_major__ >= 15) || (!defined(__clang__) && __GNUC__ >= 12)
#define PEAK_HAVE_FP16_PROBE 1
#endif
#endif

enum { CHAINS = 16 };

typedef double (*probe_fn)(int64_t iters); /* returns ops done by one thread */

static volatile float sink_f;

#ifdef SPARQ_HAVE_X86_SIMD
static volatile int sink_i;

__attribute__((target("avx512f"))) static double probe_fp32_avx512(int64_t iters) {
  __m512 acc[CHAINS];
  const __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
  sink_f = _mm512_reduce_add_ps(s);
  return (double)iters * CHAINS * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double probe_fp32_avx2(int64_t iters) {
  __m256 acc[CHAINS];
  const __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  __m256 s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
  float out[8];
  _mm256_storeu_ps(out, s);
  sink_f = out[0];
  return (double)iters * CHAINS * 8 * 2;
}

__attribute__((target("avx512f,avx512vnni"))) static double probe_vnni(int64_t iters) {
  __m512i acc[CHAINS];
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  /* xor, not a sum: the wrapped int32 lanes must not reach C signed arithmetic */
  __m512i s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm512_xor_si512(s, acc[c]);
  sink_i = _mm512_reduce_or_epi32(s);
  return (double)iters * CHAINS * 16 * 8;
}

__attribute__((target("avx512f,avx512bf16"))) static double probe_bf16(int64_t iters) {
  __m512 acc[CHAINS];
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
  sink_f = _mm512_reduce_add_ps(s);
  return (double)iters * CHAINS * 16 * 4;
}

#ifdef PEAK_HAVE_FP16_PROBE
__attribute__((target("avx512f,avx512fp16"))) static double probe_fp16(int64_t iters) {
  __m512h acc[CHAINS];
  const __m512h a = _mm512_set1_ph((_Float16)0.999f), b = _mm512_set1_ph((_Float16)0.001f);
  for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ph((_Float16)c);
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ph(acc[c], a, b);
  __m512h s = acc[0];
  for (int c = 1; c < CHAINS; c++) s = _mm512_add_ph(s, acc[c]);
  sink_f = (float)_mm512_reduce_add_ph(s);
  return (double)iters * CHAINS * 32 * 2;
}
#endif
#endif

/* Portable fallback: plain C the compiler may vectorize as the build allows. */
static double probe_fp32_scalar(int64_t iters) {
  float acc[CHAINS];
  for (int c = 0; c < CHAINS; c++) acc[c] = (float)c;
  for (int64_t i = 0; i < iters; i++)
    for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * 0.9999999f + 1e-7f;
  float s = 0;
  for (int c = 0; c < CHAINS; c++) s += acc[c];
  sink_f = s;
  return (double)iters * CHAINS * 2;
}

/* Runs `fn` on `threads` threads with the same iteration count each and
 * returns the aggregate rate in 1e9 ops/s; the iteration count is grown until
 * one run lasts at least `seconds`, then the best of three runs is taken. */
static double measure(probe_fn fn, int threads, double seconds) {
  int64_t iters = 1 << 12;
  for (;;) {
    double t0 = sparq_now();
#pragma omp parallel num_threads(threads)
    fn(iters);
    if (sparq_now() - t0 >= seconds || iters > ((int64_t)1 << 40)) break;
    iters *= 2;
  }
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    double ops = 0, t0 = sparq_now();
#pragma omp parallel num_threads(threads) reduction(+ : ops)
    ops += fn(iters);
    double rate = ops / (sparq_now() - t0) * 1e-9;
    if (rate > best) best = rate;
  }
  return best;
}

static probe_fn fp32_probe(void) {
#ifdef SPARQ_HAVE_X86_SIMD
  sparq_isa isa = sparq_isa_active();
  if (isa == SPARQ_ISA_AVX512) return probe_fp32_avx512;
  if (isa == SPARQ_ISA_AVX2) return probe_fp32_avx2;
#endif
  return probe_fp32_scalar;
}

sparq_status sparq_peak_measure(sparq_peak *out, double seconds) {
  if (!out) return sparq_fail(SPARQ_ERR_ARG, "sparq_peak_measure: out is NULL");
  if (!(seconds > 0)) seconds = 0.5;
  memset(out, 0, sizeof *out);
  int n = sparq_threads();
  out->threads = n;
  /* 8 measurements at most, each with a short calibration and 3 runs. */
  double each = seconds / 8 / 4;
  out->fp32_fma_1 = measure(fp32_probe(), 1, each);
  out->fp32_fma_n = measure(fp32_probe(), n, each);
#ifdef SPARQ_HAVE_X86_SIMD
  const sparq_cpu_features *f = sparq_cpu();
  if (sparq_has_vnni()) {
    out->int8_vnni_1 = measure(probe_vnni, 1, each);
    out->int8_vnni_n = measure(probe_vnni, n, each);
  }
  if (sparq_has_bf16()) {
    out->bf16_dot_1 = measure(probe_bf16, 1, each);
    out->bf16_dot_n = measure(probe_bf16, n, each);
  }
#ifdef PEAK_HAVE_FP16_PROBE
  if (sparq_isa_active() == SPARQ_ISA_AVX512 && f->avx512fp16) {
    out->fp16_fma_1 = measure(probe_fp16, 1, each);
    out->fp16_fma_n = measure(probe_fp16, n, each);
  }
#else
  (void)f;
#endif
#endif
  return SPARQ_OK;
}

double sparq_peak_fp32(int threads) {
  enum { CACHED = 256 };
  static double cache[CACHED + 1];
  if (threads < 1) threads = 1;
  if (threads <= CACHED && cache[threads] > 0) return cache[threads];
  double rate = measure(fp32_probe(), threads, 0.1);
  if (threads <= CACHED) cache[threads] = rate;
  return rate;
}
