/* base/: status messages, allocation limits, arenas, the counter-based RNG,
 * CPU detection, thread settings, progress lines. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "sparq/base.h"

static void status_message_names_what(void **state) {
  (void)state;
  assert_int_equal(sparq_fail(SPARQ_ERR_ARG, "f: x=%d is bad", 3), SPARQ_ERR_ARG);
  assert_string_equal(sparq_last_error(), "f: x=3 is bad");
  sparq_clear_error();
  assert_string_equal(sparq_last_error(), "");
  for (int s = SPARQ_OK; s <= SPARQ_ERR_INTERNAL; s++) assert_non_null(sparq_status_name((sparq_status)s));
  /* a long message is truncated, not overflowed */
  char big[3000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  sparq_fail(SPARQ_ERR_IO, "%s", big);
  assert_int_equal(strlen(sparq_last_error()), 1023);
}

static void alloc_is_aligned_and_checks_overflow(void **state) {
  (void)state;
  for (size_t n = 1; n < 300; n += 37) {
    unsigned char *p = sparq_alloc(n, "test");
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % SPARQ_ALIGN, 0);
    memset(p, 1, n);
    sparq_free(p);
  }
  assert_null(sparq_alloc(0, "zero"));
  assert_non_null(strstr(sparq_last_error(), "zero"));
  assert_null(sparq_alloc(SIZE_MAX - 3, "huge"));
  assert_null(sparq_calloc(SIZE_MAX / 2, 3, "product"));
  assert_non_null(strstr(sparq_last_error(), "overflows"));
  size_t out = 7;
  assert_false(sparq_size_mul(SIZE_MAX, 2, &out));
  assert_int_equal(out, 7);
  assert_true(sparq_size_add(1, 2, &out));
  assert_int_equal(out, 3);
  float *z = sparq_calloc(100, sizeof(float), "calloc");
  for (int i = 0; i < 100; i++) assert_true(z[i] == 0.0f);
  sparq_free(z);
}

static void arena_marks_and_limits(void **state) {
  (void)state;
  sparq_arena a;
  assert_int_equal(sparq_arena_init(&a, 1024), SPARQ_OK);
  void *p = sparq_arena_alloc(&a, 10, "p");
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % SPARQ_ALIGN, 0);
  size_t mark = sparq_arena_mark(&a);
  void *q = sparq_arena_alloc(&a, 100, "q");
  assert_ptr_equal(q, (unsigned char *)p + 64);
  assert_null(sparq_arena_alloc(&a, 2000, "too big"));
  assert_non_null(strstr(sparq_last_error(), "too big"));
  assert_null(sparq_arena_alloc(&a, SIZE_MAX, "overflow"));
  sparq_arena_reset(&a, mark);
  assert_ptr_equal(sparq_arena_alloc(&a, 1, "again"), q);
  assert_int_equal(a.peak, 64 + 128);
  sparq_arena_destroy(&a);
}

/* Known-answer vectors of Philox4x32-10 from the Random123 distribution. */
static void philox_known_answers(void **state) {
  (void)state;
  uint32_t out[4];
  sparq_philox4x32(0, 0, 0, out);
  assert_int_equal(out[0], 0x6627e8d5u);
  assert_int_equal(out[1], 0xe169c58du);
  assert_int_equal(out[2], 0xbc57ac4cu);
  assert_int_equal(out[3], 0x9b00dbd8u);
  sparq_philox4x32(UINT64_MAX, UINT64_MAX, UINT64_MAX, out);
  assert_int_equal(out[0], 0x408f276du);
  assert_int_equal(out[1], 0x41c83b0eu);
  assert_int_equal(out[2], 0xa20bc7c6u);
  assert_int_equal(out[3], 0x6d5451fdu);
  sparq_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, out);
  assert_int_equal(out[0], 0xd16cfe09u);
  assert_int_equal(out[1], 0x94fdccebu);
  assert_int_equal(out[2], 0x5001e420u);
  assert_int_equal(out[3], 0x24126ea1u);
}

static void rng_same_stream_for_any_thread_count(void **state) {
  (void)state;
  const size_t n = 200003;
  float *a = sparq_alloc(n * sizeof(float), "a"), *b = sparq_alloc(n * sizeof(float), "b");
  int saved = sparq_threads();
  sparq_set_threads(1);
  sparq_rng r1 = sparq_rng_make(42, 7);
  sparq_rng_fill_normal(&r1, a, n, 0, 1);
  sparq_set_threads(3);
  sparq_rng r2 = sparq_rng_make(42, 7);
  sparq_rng_fill_normal(&r2, b, n, 0, 1);
  assert_memory_equal(a, b, n * sizeof(float));
  assert_int_equal(r1.position, n);
  /* the sequential view draws the same numbers */
  sparq_rng r3 = sparq_rng_make(42, 7);
  for (size_t i = 0; i < 1000; i++) assert_true(sparq_rng_normal(&r3) == a[i]);
  /* moments of the normal fill */
  double mean = 0, var = 0;
  for (size_t i = 0; i < n; i++) mean += a[i];
  mean /= (double)n;
  for (size_t i = 0; i < n; i++) var += (a[i] - mean) * (a[i] - mean);
  var /= (double)n;
  assert_true(fabs(mean) < 0.01 && fabs(var - 1) < 0.02);
  /* a different stream differs */
  sparq_rng r4 = sparq_rng_make(42, 8);
  sparq_rng_fill_normal(&r4, b, n, 0, 1);
  assert_memory_not_equal(a, b, 64);
  sparq_set_threads(saved);
  sparq_free(a);
  sparq_free(b);
}

static void rng_uniform_and_below_ranges(void **state) {
  (void)state;
  sparq_rng r = sparq_rng_make(1, 0);
  int counts[10] = {0};
  for (int i = 0; i < 100000; i++) {
    float u = sparq_rng_uniform(&r);
    assert_true(u >= 0.0f && u < 1.0f);
    uint64_t k = sparq_rng_below(&r, 10);
    assert_true(k < 10);
    counts[k]++;
  }
  for (int k = 0; k < 10; k++) assert_true(counts[k] > 9500 && counts[k] < 10500);
  assert_int_equal(sparq_rng_below(&r, 1), 0);
  float buf[1000];
  sparq_rng_fill_uniform(&r, buf, 1000, -2, 3);
  for (int i = 0; i < 1000; i++) assert_true(buf[i] >= -2 && buf[i] < 3);
}

static void cpu_features_are_consistent(void **state) {
  (void)state;
  const sparq_cpu_features *f = sparq_cpu();
  sparq_isa isa = sparq_isa_active();
  if (isa == SPARQ_ISA_AVX512) assert_true(f->avx512f && f->avx512bw && f->os_avx512);
  if (isa >= SPARQ_ISA_AVX2) assert_true(f->avx2 && f->fma);
  if (f->avx512f) assert_true(f->os_avx512);
  sparq_set_isa_cap(SPARQ_ISA_SCALAR);
  assert_int_equal(sparq_isa_active(), SPARQ_ISA_SCALAR);
  assert_false(sparq_has_vnni());
  sparq_set_isa_cap(SPARQ_ISA_AVX512);
  assert_int_equal(sparq_isa_active(), isa);
  assert_string_equal(sparq_isa_name(SPARQ_ISA_AVX2), "avx2");
}

static void threads_from_env_and_ftz(void **state) {
  (void)state;
  int saved = sparq_threads();
  setenv("SPARQ_THREADS", "3", 1);
  assert_int_equal(sparq_set_threads(0), 3);
  assert_int_equal(sparq_threads(), 3);
  setenv("SPARQ_THREADS", "x", 1);
  assert_true(sparq_set_threads(0) < 0);
  assert_non_null(strstr(sparq_last_error(), "SPARQ_THREADS"));
  unsetenv("SPARQ_THREADS");
  assert_int_equal(sparq_set_threads(2), 2);
  int ftz_everywhere = 1;
#pragma omp parallel num_threads(2) reduction(& : ftz_everywhere)
  ftz_everywhere &= (_mm_getcsr() & 0x8040) == 0x8040;
  assert_true(ftz_everywhere);
  /* with FTZ, a product below the normal range flushes to zero */
  volatile float tiny = 1e-30f;
  assert_true(tiny * 1e-10f == 0.0f);
  sparq_set_threads(saved);
}

static void progress_plain_lines_when_not_a_tty(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  sparq_progress p;
  sparq_progress_begin(&p, f, "train", "step", 10);
  p.interval = 0; /* print every update */
  sparq_progress_update(&p, 5, "loss 1.5");
  sparq_progress_end(&p, "done");
  rewind(f);
  char line[256];
  assert_non_null(fgets(line, sizeof line, f));
  assert_non_null(strstr(line, "train 5/10"));
  assert_non_null(strstr(line, "ETA"));
  assert_non_null(strstr(line, "loss 1.5"));
  assert_non_null(fgets(line, sizeof line, f));
  assert_non_null(strstr(line, "train 5/10"));
  assert_non_null(strstr(line, "done"));
  fclose(f);
  double t0 = sparq_now(), t1 = sparq_now();
  assert_true(t1 >= t0);
  assert_non_null(sparq_version());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(status_message_names_what),
      cmocka_unit_test(alloc_is_aligned_and_checks_overflow),
      cmocka_unit_test(arena_marks_and_limits),
      cmocka_unit_test(philox_known_answers),
      cmocka_unit_test(rng_same_stream_for_any_thread_count),
      cmocka_unit_test(rng_uniform_and_below_ranges),
      cmocka_unit_test(cpu_features_are_consistent),
      cmocka_unit_test(threads_from_env_and_ftz),
      cmocka_unit_test(progress_plain_lines_when_not_a_tty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
