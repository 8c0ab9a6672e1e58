/* Fortunes corpus: which files count, their order, the 90/10 split, and the
 * deterministic window sampler for language-model batches. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sparq/data.h"

static void put_file(const char *dir, const char *name, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

static void put_link(const char *dir, const char *name, const char *target) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_int_equal(symlink(target, path), 0);
}

static void remove_entry(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (unlink(path)) rmdir(path);
}

/* A directory shaped like /usr/share/games/fortunes plus the awkward cases. */
static void file_rule_and_order(void **state) {
  (void)state;
  char dir[512], sub[600];
  snprintf(dir, sizeof dir, "%s/fortunes_XXXXXX", SPARQ_TEST_TMP);
  assert_non_null(mkdtemp(dir));
  put_file(dir, "b", "bbbb\n%\n");
  put_file(dir, "a", "aa\n%\n");
  put_file(dir, "a-b", "dash\n");   /* '-' sorts before '.', and "a" before "a-b" */
  put_file(dir, "Zed", "ZZ\n");     /* byte order: 'Z' < 'a' */
  put_file(dir, "empty", "");       /* a regular file, adds nothing */
  put_file(dir, "a.dat", "\x01\x02INDEX"); /* strfile index: skipped */
  put_file(dir, "b.dat", "\x03INDEX");
  put_link(dir, "a.u8", "a");       /* Debian's UTF-8 aliases: skipped */
  put_link(dir, "b.u8", "b");
  put_link(dir, "other-link", "b"); /* any symlink: skipped */
  put_link(dir, "dangling", "no-such-file");
  snprintf(sub, sizeof sub, "%s/subdir", dir);
  assert_int_equal(mkdir(sub, 0777), 0);
  put_file(sub, "c", "not me\n");

  sparq_text_corpus c;
  assert_int_equal(sparq_fortunes_load(dir, &c), SPARQ_OK);
  const char *want = "ZZ\naa\n%\ndash\nbbbb\n%\n";
  assert_int_equal(c.size, strlen(want));
  assert_memory_equal(c.bytes, want, c.size);
  assert_int_equal(c.files, 5);
  /* 20 bytes: train 18, val 2 */
  assert_int_equal(c.train_size, 18);
  assert_int_equal(c.val_size, 2);
  assert_ptr_equal(c.train, c.bytes);
  assert_ptr_equal(c.val, c.bytes + 18);
  sparq_text_corpus_free(&c);
  sparq_text_corpus_free(&c);

  /* the environment variable stands in for a NULL dir */
  setenv("SPARQ_FORTUNES_DIR", dir, 1);
  assert_int_equal(sparq_fortunes_load(NULL, &c), SPARQ_OK);
  assert_int_equal(c.size, strlen(want));
  sparq_text_corpus_free(&c);
  unsetenv("SPARQ_FORTUNES_DIR");

  remove_entry(sub, "c");
  const char *names[] = {"b",     "a",    "a-b",  "Zed",        "empty",    "a.dat",
                         "b.dat", "a.u8", "b.u8", "other-link", "dangling", "subdir"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) remove_entry(dir, names[i]);
  rmdir(dir);
}

static void split_sizes_round_down(void **state) {
  (void)state;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/fortunes_split_XXXXXX", SPARQ_TEST_TMP);
  assert_non_null(mkdtemp(dir));
  const size_t sizes[] = {1, 9, 10, 11, 19, 100, 1001};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    char *text = malloc(sizes[k] + 1);
    memset(text, 'x', sizes[k]);
    text[sizes[k]] = '\0';
    put_file(dir, "only", text);
    free(text);
    sparq_text_corpus c;
    assert_int_equal(sparq_fortunes_load(dir, &c), SPARQ_OK);
    assert_int_equal(c.size, sizes[k]);
    assert_int_equal(c.train_size, sizes[k] * 9 / 10);
    assert_int_equal(c.train_size + c.val_size, c.size);
    sparq_text_corpus_free(&c);
  }
  remove_entry(dir, "only");
  rmdir(dir);
}

static void missing_corpus_names_the_package(void **state) {
  (void)state;
  sparq_text_corpus c;
  assert_int_equal(sparq_fortunes_load("/nonexistent/sparq-fortunes", &c), SPARQ_ERR_NOT_FOUND);
  assert_string_equal(sparq_last_error(), "/nonexistent/sparq-fortunes: not found (install the Debian package fortunes)");
  assert_null(c.bytes);
  /* a directory with only index files and links holds no text */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/fortunes_empty_XXXXXX", SPARQ_TEST_TMP);
  assert_non_null(mkdtemp(dir));
  put_file(dir, "x.dat", "idx");
  put_link(dir, "x.u8", "x");
  assert_int_equal(sparq_fortunes_load(dir, &c), SPARQ_ERR_NOT_FOUND);
  assert_non_null(strstr(sparq_last_error(), "install the Debian package fortunes"));
  assert_true(!strncmp(sparq_last_error(), dir, strlen(dir)));
  remove_entry(dir, "x.dat");
  remove_entry(dir, "x.u8");
  rmdir(dir);
}

static void batches_are_windows_and_deterministic(void **state) {
  (void)state;
  enum { SIZE = 5000, B = 8, T = 16 };
  uint8_t *data = malloc(SIZE);
  for (int i = 0; i < SIZE; i++) data[i] = (uint8_t)(i % 251); /* position is recoverable mod 251 */
  int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
  sparq_rng r1 = sparq_rng_make(42, 3), r2 = sparq_rng_make(42, 3);
  assert_int_equal(sparq_text_batch(data, SIZE, B, T, &r1, x, y), SPARQ_OK);
  assert_int_equal(sparq_text_batch(data, SIZE, B, T, &r2, x2, y2), SPARQ_OK);
  assert_memory_equal(x, x2, sizeof x); /* same seed, same batch */
  assert_memory_equal(y, y2, sizeof y);
  assert_int_equal(r1.position, r2.position);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      assert_int_equal(y[b * T + t], (x[b * T + t] + 1) % 251); /* y is x shifted by one byte */
      if (t + 1 < T) assert_int_equal(x[b * T + t + 1], y[b * T + t]);
    }
  /* the rng advanced: the next batch differs; another seed differs too */
  assert_int_equal(sparq_text_batch(data, SIZE, B, T, &r1, x2, y2), SPARQ_OK);
  assert_memory_not_equal(x, x2, sizeof x);
  sparq_rng r3 = sparq_rng_make(43, 3);
  assert_int_equal(sparq_text_batch(data, SIZE, B, T, &r3, x2, y2), SPARQ_OK);
  assert_memory_not_equal(x, x2, sizeof x);

  /* size = T + 3 leaves exactly three start offsets; all are drawn, none past the end */
  for (int i = 0; i < T + 3; i++) data[i] = (uint8_t)i;
  bool seen[3] = {false, false, false};
  sparq_rng r = sparq_rng_make(1, 0);
  for (int k = 0; k < 200; k++) {
    int32_t xs[T], ys[T];
    assert_int_equal(sparq_text_batch(data, T + 3, 1, T, &r, xs, ys), SPARQ_OK);
    assert_in_range(xs[0], 0, 2);
    seen[xs[0]] = true;
    assert_int_equal(ys[T - 1], xs[0] + T);
  }
  assert_true(seen[0] && seen[1] && seen[2]);
  /* size = T + 1: one window, the whole array */
  int32_t xs[T], ys[T];
  assert_int_equal(sparq_text_batch(data, T + 1, 1, T, &r, xs, ys), SPARQ_OK);
  assert_int_equal(xs[0], 0);
  assert_int_equal(ys[T - 1], T);
  assert_int_equal(sparq_text_batch(data, T, 1, T, &r, xs, ys), SPARQ_ERR_ARG);
  assert_int_equal(sparq_text_batch(data, SIZE, 0, T, &r, xs, ys), SPARQ_ERR_ARG);
  assert_int_equal(sparq_text_batch(data, SIZE, 1, 0, &r, xs, ys), SPARQ_ERR_ARG);
  free(data);
}

static void real_corpus_when_installed(void **state) {
  (void)state;
  if (access(SPARQ_FORTUNES_DEFAULT_DIR "/fortunes", R_OK) != 0) {
    print_message("fortunes is not installed (Debian package fortunes); skipping\n");
    skip();
  }
  sparq_text_corpus c;
  assert_int_equal(sparq_fortunes_load(SPARQ_FORTUNES_DEFAULT_DIR, &c), SPARQ_OK);
  assert_true(c.size > 1000000); /* about 2.6 MB in Debian 12 */
  assert_int_equal(c.train_size, c.size / 10 * 9 + c.size % 10 * 9 / 10);
  assert_true(c.files > 10);
  /* no strfile index slipped in: those hold NUL bytes, the text does not */
  assert_null(memchr(c.bytes, 0, c.size));
  sparq_text_corpus_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(file_rule_and_order),
      cmocka_unit_test(split_sizes_round_down),
      cmocka_unit_test(missing_corpus_names_the_package),
      cmocka_unit_test(batches_are_windows_and_deterministic),
      cmocka_unit_test(real_corpus_when_installed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
