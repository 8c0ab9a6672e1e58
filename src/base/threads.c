#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <omp.h>

#include "sparq/base.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

const char *sparq_version(void) { return SPARQ_VERSION_STRING; }

void sparq_thread_set_ftz(void) {
#if defined(__SSE__) || defined(__x86_64__)
  /* bit 15 FTZ, bit 6 DAZ */
  _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

int sparq_set_threads(int n) {
  if (n <= 0) {
    const char *env = getenv("SPARQ_THREADS");
    if (env && *env) {
      char *end;
      errno = 0;
      long v = strtol(env, &end, 10);
      if (errno || *end || v <= 0 || v > 4096) {
        sparq_fail(SPARQ_ERR_ARG, "SPARQ_THREADS: '%s' is not a thread count (1..4096)", env);
        return -1;
      }
      n = (int)v;
    } else {
      n = omp_get_num_procs();
    }
  }
  omp_set_num_threads(n);
  sparq_thread_set_ftz();
#pragma omp parallel num_threads(n)
  sparq_thread_set_ftz();
  return n;
}

int sparq_threads(void) { return omp_get_max_threads(); }

double sparq_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
