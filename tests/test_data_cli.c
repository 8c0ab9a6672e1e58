/* `sparq data` end to end on fake data: exit codes, messages, the grid PNG. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "sparq/image.h"

static char tmp[512];   /* this test's directory */
static char fm[600];    /* fake Fashion-MNIST */
static char text[600];  /* fake fortunes */

static void write_idx_gz(const char *path, const int *dims, int ndim, const uint8_t *data) {
  gzFile gz = gzopen(path, "wb");
  assert_non_null(gz);
  uint8_t head[4] = {0, 0, 0x08, (uint8_t)ndim};
  gzwrite(gz, head, 4);
  size_t n = 1;
  for (int d = 0; d < ndim; d++) {
    uint8_t be[4] = {(uint8_t)(dims[d] >> 24), (uint8_t)(dims[d] >> 16), (uint8_t)(dims[d] >> 8), (uint8_t)dims[d]};
    gzwrite(gz, be, 4);
    n *= (size_t)dims[d];
  }
  gzwrite(gz, data, (unsigned)n);
  assert_int_equal(gzclose(gz), Z_OK);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmp, sizeof tmp, "%s/data_cli_XXXXXX", SPARQ_TEST_TMP);
  if (!mkdtemp(tmp)) return -1;
  snprintf(fm, sizeof fm, "%s/fm", tmp);
  snprintf(text, sizeof text, "%s/text", tmp);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s' && printf 'Q: Why?\\nA: Because.\\n%%%%\\n' > '%s/f1'", fm, text, text);
  if (system(cmd) != 0) return -1;
  enum { N = 12 };
  static uint8_t px[N * 28 * 28], lb[N];
  for (int i = 0; i < N * 28 * 28; i++) px[i] = (uint8_t)(i % 28 * 9);
  for (int i = 0; i < N; i++) lb[i] = (uint8_t)(i % 10);
  const char *prefixes[2] = {"train", "t10k"};
  for (int p = 0; p < 2; p++) {
    char path[800];
    int idims[3] = {N, 28, 28}, ldims[1] = {N};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", fm, prefixes[p]);
    write_idx_gz(path, idims, 3, px);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", fm, prefixes[p]);
    write_idx_gz(path, ldims, 1, lb);
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  return system(cmd) == 0 ? 0 : -1;
}

/* Runs `sparq ARGS` with the fake data; returns the exit code and leaves
 * stdout and stderr in tmp/out and tmp/err. */
static int run(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "SPARQ_FASHION_MNIST_DIR='%s' SPARQ_FORTUNES_DIR='%s' '%s' %s >'%s/out' 2>'%s/err'", fm, text,
           SPARQ_CLI, args, tmp, tmp);
  int rc = system(cmd);
  assert_true(WIFEXITED(rc));
  return WEXITSTATUS(rc);
}

static char *slurp(const char *name) {
  static char buf[8192];
  char path[800];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void png_size(const char *path, int *h, int *w) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  assert_true(png_image_begin_read_from_file(&img, path));
  *h = (int)img.height;
  *w = (int)img.width;
  png_image_free(&img);
}

static void grid_is_written(void **state) {
  (void)state;
  char args[1024], path[800];
  int h, w;
  snprintf(path, sizeof path, "%s/g.png", tmp);
  snprintf(args, sizeof args, "data fashion-mnist --grid '%s' --n 5 --split test", path);
  assert_int_equal(run(args), 0);
  assert_non_null(strstr(slurp("out"), path));
  assert_string_equal(slurp("err"), "");
  /* 5 tiles: 3 columns, 2 rows; 84-pixel tiles, 11-pixel label strips, 2-pixel borders */
  png_size(path, &h, &w);
  assert_int_equal(w, 2 + 3 * (84 + 2));
  assert_int_equal(h, 2 + 2 * (84 + SPARQ_FONT_HEIGHT + 2 + 2));
  /* --pad32 makes 96-pixel tiles; --n above the data set's size is clipped to it */
  snprintf(args, sizeof args, "data fashion-mnist --grid='%s' --pad32 --n 1024", path);
  assert_int_equal(run(args), 0);
  png_size(path, &h, &w);
  assert_int_equal(w, 2 + 4 * (96 + 2)); /* 12 tiles: 4 x 3 */
  assert_int_equal(h, 2 + 3 * (96 + SPARQ_FONT_HEIGHT + 2 + 2));
}

static void usage_errors_exit_2(void **state) {
  (void)state;
  const char *bad[] = {
      "data",
      "data nope",
      "data fashion-mnist",                         /* --grid is required */
      "data fashion-mnist --grid x.png --n 0",
      "data fashion-mnist --grid x.png --n 1025",
      "data fashion-mnist --grid x.png --split val",
      "data fashion-mnist --grid x.png --bogus",
      "data fashion-mnist --grid",
      "data fashion-mnist --grid x.png extra",
      "data text --split test",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(run(bad[i]), 2);
    assert_non_null(strstr(slurp("err"), "usage: sparq data"));
  }
}

static void runtime_errors_exit_1_with_one_line(void **state) {
  (void)state;
  char args[1024], want[1024];
  /* an output directory that does not exist is not created */
  snprintf(args, sizeof args, "data fashion-mnist --grid '%s/no/such/dir/g.png'", tmp);
  assert_int_equal(run(args), 1);
  const char *err = slurp("err");
  snprintf(want, sizeof want, "sparq: %s/no/such/dir/g.png: ", tmp);
  assert_true(!strncmp(err, want, strlen(want)));
  assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* exactly one line */
  /* a missing data set names the package */
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "SPARQ_FASHION_MNIST_DIR='%s/none' '%s' data fashion-mnist --grid '%s/g.png' 2>'%s/err'", tmp,
           SPARQ_CLI, tmp, tmp);
  int rc = system(cmd);
  assert_int_equal(WEXITSTATUS(rc), 1);
  snprintf(want, sizeof want,
           "sparq: %s/none/train-images-idx3-ubyte.gz: not found (install the Debian package dataset-fashion-mnist)\n", tmp);
  assert_string_equal(slurp("err"), want);
}

static void text_prints_sizes_and_a_sample(void **state) {
  (void)state;
  assert_int_equal(run("data text"), 0);
  const char *out = slurp("out");
  assert_non_null(strstr(out, "22 bytes from 1 file\n"));
  assert_non_null(strstr(out, "train 19 bytes"));
  assert_non_null(strstr(out, "val 3 bytes"));
  assert_non_null(strstr(out, "sample of train"));
  assert_int_equal(run("data text --split val"), 0);
  assert_non_null(strstr(slurp("out"), "sample of val"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(grid_is_written),
      cmocka_unit_test(usage_errors_exit_2),
      cmocka_unit_test(runtime_errors_exit_1_with_one_line),
      cmocka_unit_test(text_prints_sizes_and_a_sample),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
