/* The element-wise maps of Dynamic Range Expansion (fp8_dre.c), with their
 * AVX-512 twins (fp8_dre_simd.c). Each twin runs the same IEEE operations
 * per element as its reference, so the results are the same bits; the
 * dispatchers pick one by sparq_isa_active(). */
#ifndef SPARQ_TRAIN_FP8_DRE_INTERNAL_H
#define SPARQ_TRAIN_FP8_DRE_INTERNAL_H

#include <stddef.h>

/* pow(x, e) for e > 0 (fp8_dre_pow.h), the reference and the dispatched
 * scalar (the same body compiled with FMA where the CPU has it). */
float dre_pow_ref(float x, float e);
float dre_pow(float x, float e);

/* Dequantisation in place: x[i] = copysign(pow(|x[i] scale|, inv_k) c, x[i] scale). */
void dre_decode_n_ref(float *x, size_t n, float scale, float inv_k, float c);
void dre_decode_n(float *x, size_t n, float scale, float inv_k, float c);
/* Quantiser input: y[i] = copysign(pow(|x[i]| / c, k), x[i]) / scale. */
void dre_expand_n_ref(const float *x, float *y, size_t n, float c, float k, float scale);
void dre_expand_n(const float *x, float *y, size_t n, float c, float k, float scale);

#ifdef SPARQ_HAVE_X86_SIMD
void dre_pow_n_avx512(const float *x, float e, float *out, size_t n);
void dre_decode_n_avx512(float *x, size_t n, float scale, float inv_k, float c);
void dre_expand_n_avx512(const float *x, float *y, size_t n, float c, float k, float scale);
#endif

#endif
