/* Atomic writes: the destination is the complete new file or untouched, and
 * no temporary file survives a failure. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "io_test_util.h"

#define ATOMIC_DIR SPARQ_TEST_TMP "/atomic"

static void commit_creates_the_file(void **state) {
  (void)state;
  io_mkdir(ATOMIC_DIR);
  const char *path = ATOMIC_DIR "/a.bin";
  unlink(path);
  mode_t old = umask(022);
  sparq_atomic_file f;
  assert_int_equal(sparq_atomic_open(&f, path), SPARQ_OK);
  assert_int_equal(access(path, F_OK), -1); /* nothing visible until commit */
  assert_int_equal(sparq_atomic_write(&f, "hello ", 6), SPARQ_OK);
  assert_int_equal(sparq_atomic_write(&f, "world", 5), SPARQ_OK);
  assert_int_equal(sparq_atomic_commit(&f), SPARQ_OK);
  umask(old);
  size_t n;
  char *text = test_slurp(path, &n);
  assert_int_equal(n, 11);
  assert_memory_equal(text, "hello world", 11);
  free(text);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0644);
  assert_int_equal(io_count_files(ATOMIC_DIR, ".tmp"), 0);

  /* relative paths (no directory part) work too */
  char cwd[4096];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(ATOMIC_DIR), 0);
  assert_int_equal(sparq_write_file_atomic("rel.bin", "x", 1), SPARQ_OK);
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(access(ATOMIC_DIR "/rel.bin", F_OK), 0);
}

static void abort_keeps_the_old_file(void **state) {
  (void)state;
  io_mkdir(ATOMIC_DIR);
  const char *path = ATOMIC_DIR "/b.bin";
  assert_int_equal(sparq_write_file_atomic(path, "old", 3), SPARQ_OK);
  sparq_atomic_file f;
  assert_int_equal(sparq_atomic_open(&f, path), SPARQ_OK);
  assert_int_equal(sparq_atomic_write(&f, "new new new", 11), SPARQ_OK);
  sparq_atomic_abort(&f);
  sparq_atomic_abort(&f); /* harmless on a finished file */
  size_t n;
  char *text = test_slurp(path, &n);
  assert_int_equal(n, 3);
  assert_memory_equal(text, "old", 3);
  free(text);
  assert_int_equal(io_count_files(ATOMIC_DIR, ".tmp"), 0);
  /* write/commit on a finished file are argument errors, not crashes */
  assert_int_equal(sparq_atomic_write(&f, "x", 1), SPARQ_ERR_ARG);
  assert_int_equal(sparq_atomic_commit(&f), SPARQ_ERR_ARG);
}

static void missing_directory_and_bad_paths(void **state) {
  (void)state;
  const char *path = ATOMIC_DIR "/no/such/dir/c.bin";
  assert_int_equal(sparq_write_file_atomic(path, "x", 1), SPARQ_ERR_NOT_FOUND);
  assert_true(io_error_names(path));
  assert_int_equal(sparq_write_file_atomic(ATOMIC_DIR "/", "x", 1), SPARQ_ERR_ARG);
  assert_int_equal(sparq_write_file_atomic("", "x", 1), SPARQ_ERR_ARG);

  /* the destination is a directory: rename fails, the temp file goes */
  io_mkdir(ATOMIC_DIR);
  io_mkdir(ATOMIC_DIR "/is_a_dir");
  io_mkdir(ATOMIC_DIR "/is_a_dir/inner");
  assert_int_equal(sparq_write_file_atomic(ATOMIC_DIR "/is_a_dir", "x", 1), SPARQ_ERR_IO);
  assert_true(io_error_names(ATOMIC_DIR "/is_a_dir"));
  assert_int_equal(io_count_files(ATOMIC_DIR, ".tmp"), 0);
}

/* A write that fails half-way (here: the file size limit, as a full disk
 * would) leaves the old file byte for byte and removes the temp file. */
static void failed_write_keeps_the_old_file(void **state) {
  (void)state;
  io_mkdir(ATOMIC_DIR);
  const char *path = ATOMIC_DIR "/d.npy";
  float small[4] = {1, 2, 3, 4};
  sparq_tensor t = {.data = small, .dtype = SPARQ_F32, .ndim = 1, .shape = {4}};
  assert_int_equal(sparq_npy_write(path, &t), SPARQ_OK);
  size_t before_n;
  char *before = test_slurp(path, &before_n);

  enum { BIG = 1 << 16 };
  float *big = calloc(BIG, sizeof *big);
  sparq_tensor tb = {.data = big, .dtype = SPARQ_F32, .ndim = 1, .shape = {BIG}};
  sparq_named_tensor nt = {"big", tb};
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = 4096;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of dying */
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  sparq_status npy = sparq_npy_write(path, &tb);
  sparq_status st = sparq_safetensors_write(path, &nt, 1, NULL, 0);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, prev);
  free(big);

  assert_int_equal(npy, SPARQ_ERR_IO);
  assert_int_equal(st, SPARQ_ERR_IO);
  assert_true(io_error_names(path));
  size_t after_n;
  char *after = test_slurp(path, &after_n);
  assert_int_equal(after_n, before_n);
  assert_memory_equal(after, before, before_n);
  assert_int_equal(io_count_files(ATOMIC_DIR, ".tmp"), 0);
  free(before);
  free(after);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(commit_creates_the_file),
      cmocka_unit_test(abort_keeps_the_old_file),
      cmocka_unit_test(missing_directory_and_bad_paths),
      cmocka_unit_test(failed_write_keeps_the_old_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
