/* Foundations shared by every area: memory, random numbers, CPU features,
 * threads, timers and progress lines. */
#ifndef SPARQ_BASE_H
#define SPARQ_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Library version, "MAJOR.MINOR.PATCH". */
const char *sparq_version(void);

/* ---------------------------------------------------------------- memory */

/* Alignment of every sparq allocation, in bytes (one cache line, one zmm). */
#define SPARQ_ALIGN 64

/* Allocates `bytes` (rounded up to SPARQ_ALIGN) aligned to SPARQ_ALIGN.
 * Returns NULL and records an error naming `what` on failure or when
 * bytes == 0. Free with sparq_free(). */
void *sparq_alloc(size_t bytes, const char *what);
/* Same, zero-filled. */
void *sparq_calloc(size_t count, size_t size, const char *what);
void sparq_free(void *ptr);

/* Overflow-checked size arithmetic: returns false (and leaves *out alone) if
 * the exact result does not fit in size_t. */
bool sparq_size_mul(size_t a, size_t b, size_t *out);
bool sparq_size_add(size_t a, size_t b, size_t *out);

/* A bump allocator over one aligned block: many allocations, one free.
 * Allocations are SPARQ_ALIGN-aligned; a mark/reset pair releases everything
 * allocated after the mark (activations of one step, scratch of one call). */
typedef struct sparq_arena {
  unsigned char *base;
  size_t capacity; /* bytes */
  size_t used;     /* bytes, always a multiple of SPARQ_ALIGN */
  size_t peak;     /* largest `used` seen, bytes */
} sparq_arena;

sparq_status sparq_arena_init(sparq_arena *arena, size_t capacity);
/* Returns NULL and records an error naming `what` if the arena is full. */
void *sparq_arena_alloc(sparq_arena *arena, size_t bytes, const char *what);
static inline size_t sparq_arena_mark(const sparq_arena *arena) { return arena->used; }
void sparq_arena_reset(sparq_arena *arena, size_t mark);
void sparq_arena_destroy(sparq_arena *arena);

/* ------------------------------------------------------------------- rng */

/* Philox4x32-10 (Salmon et al., SC'11): a counter-based generator. Draw i of
 * a stream is a pure function of (seed, stream, i), so a buffer filled by any
 * number of threads holds the same numbers, and runs are reproducible from
 * the seed alone. */
void sparq_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);

/* A sequential view on one stream: `position` counts 128-bit blocks drawn. */
typedef struct sparq_rng {
  uint64_t seed;
  uint64_t stream;
  uint64_t position;
} sparq_rng;

sparq_rng sparq_rng_make(uint64_t seed, uint64_t stream);
uint32_t sparq_rng_u32(sparq_rng *rng);
uint64_t sparq_rng_u64(sparq_rng *rng);
/* Uniform in [0, 1) with 24 random bits (every float of that grid equally likely). */
float sparq_rng_uniform(sparq_rng *rng);
/* Standard normal (Box-Muller in double precision). */
float sparq_rng_normal(sparq_rng *rng);
/* Uniform integer in [0, n), n >= 1, without modulo bias. */
uint64_t sparq_rng_below(sparq_rng *rng, uint64_t n);

/* Fills out[0..n) in parallel; element i comes from block position + i, then
 * the rng advances by n blocks. Results do not depend on the thread count. */
void sparq_rng_fill_uniform(sparq_rng *rng, float *out, size_t n, float lo, float hi);
void sparq_rng_fill_normal(sparq_rng *rng, float *out, size_t n, float mean, float stddev);

/* ------------------------------------------------------------------- cpu */

typedef struct sparq_cpu_features {
  bool avx2, fma, f16c;
  bool avx512f, avx512bw, avx512vl, avx512dq;
  bool avx512vnni, avx512bf16, avx512fp16;
  bool os_avx, os_avx512; /* the OS saves ymm / zmm+opmask state (xgetbv) */
  char vendor[13];
  char brand[49];
} sparq_cpu_features;

/* Kernel families picked at run time, from least to most capable. */
typedef enum sparq_isa {
  SPARQ_ISA_SCALAR = 0,
  SPARQ_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
  SPARQ_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ */
} sparq_isa;

/* Features of this CPU (cpuid + xgetbv, read once). */
const sparq_cpu_features *sparq_cpu(void);
/* The best ISA this CPU and OS support, capped by the build (SPARQ_SIMD=OFF
 * gives scalar), by the environment variable SPARQ_ISA=scalar|avx2|avx512,
 * and by sparq_set_isa_cap(). Kernels dispatch on this. */
sparq_isa sparq_isa_active(void);
/* Caps the ISA for this process (tests use it to exercise the fallbacks). */
void sparq_set_isa_cap(sparq_isa cap);
const char *sparq_isa_name(sparq_isa isa);
/* True when the CPU runs AVX-512 VNNI (vpdpbusd) at the active ISA. */
bool sparq_has_vnni(void);
/* True when the CPU has AVX512-BF16 at the active ISA. */
bool sparq_has_bf16(void);

/* --------------------------------------------------------------- threads */

/* Sets the number of OpenMP threads sparq (and oneDNN) uses. n <= 0 means:
 * the SPARQ_THREADS environment variable if set, else all processors. Also
 * sets flush-to-zero and denormals-are-zero in every worker thread, because
 * denormal arithmetic is up to 100x slower on x86. Returns the count in use,
 * or a negative number if SPARQ_THREADS is not a positive integer (error
 * recorded). */
int sparq_set_threads(int n);
int sparq_threads(void);
/* Sets FTZ and DAZ on the calling thread (sparq_set_threads does all workers). */
void sparq_thread_set_ftz(void);

/* ----------------------------------------------------------------- timer */

/* Monotonic wall-clock seconds since an arbitrary origin. */
double sparq_now(void);

/* -------------------------------------------------------------- progress */

/* One progress line for long work. On a terminal it redraws in place
 * ("train 120/1000 12% 34.1 step/s ETA 0:26 loss 2.31"); otherwise it prints a
 * plain line at most every `interval` seconds, and always at the end. */
typedef struct sparq_progress {
  FILE *out;
  char label[32];
  char unit[16];
  int64_t total, done;
  double start, last_print, interval;
  bool tty;
  int last_len;
} sparq_progress;

void sparq_progress_begin(sparq_progress *p, FILE *out, const char *label, const char *unit, int64_t total);
/* `extra` (may be NULL) is appended, e.g. "loss 2.3104". */
void sparq_progress_update(sparq_progress *p, int64_t done, const char *extra);
void sparq_progress_end(sparq_progress *p, const char *extra);

#ifdef __cplusplus
}
#endif
#endif
