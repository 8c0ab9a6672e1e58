/* The per-group scans of the FP8 optimizer: the range the quantiser needs
 * and the counters the step reports. Each has a scalar reference and an
 * AVX-512 twin; all results are exact (max, min and counts), so the twins
 * agree bit for bit and the dispatchers pick one by sparq_isa_active(). */
#ifndef SPARQ_TRAIN_FP8_GROUP_SCAN_H
#define SPARQ_TRAIN_FP8_GROUP_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* max|x| and the smallest non-zero |x| (0 when all are zero); NaNs are
 * skipped. */
void fp8_abs_range_ref(const float *x, size_t n, float *amax, float *amin);
void fp8_abs_range(const float *x, size_t n, float *amax, float *amin);
/* Elements that are NaN or +-inf. */
uint64_t fp8_count_nonfinite_ref(const float *x, size_t n);
uint64_t fp8_count_nonfinite(const float *x, size_t n);
/* Non-zero x (NaN counts as non-zero), and those among them whose code is a
 * zero (+0 or -0: code & 0x7F == 0). */
void fp8_count_zeroed_ref(const float *x, const uint8_t *codes, size_t n, uint64_t *nonzero, uint64_t *zeroed);
void fp8_count_zeroed(const float *x, const uint8_t *codes, size_t n, uint64_t *nonzero, uint64_t *zeroed);

#endif
