/* Fashion-MNIST loader on small fake IDX .gz files written here, plus the
 * real Debian data when it is installed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "sparq/data.h"

/* Writes a gzip'ed IDX file: type 0x08 (u8), big-endian dims, then data. */
static void write_idx_gz(const char *path, const int *dims, int ndim, const uint8_t *data) {
  gzFile gz = gzopen(path, "wb");
  assert_non_null(gz);
  uint8_t head[4] = {0, 0, 0x08, (uint8_t)ndim};
  assert_int_equal(gzwrite(gz, head, 4), 4);
  size_t n = 1;
  for (int d = 0; d < ndim; d++) {
    uint8_t be[4] = {(uint8_t)(dims[d] >> 24), (uint8_t)(dims[d] >> 16), (uint8_t)(dims[d] >> 8), (uint8_t)dims[d]};
    assert_int_equal(gzwrite(gz, be, 4), 4);
    n *= (size_t)dims[d];
  }
  assert_int_equal(gzwrite(gz, data, (unsigned)n), (int)n);
  assert_int_equal(gzclose(gz), Z_OK);
}

typedef struct fake {
  char dir[512];
  char images[600], labels[600];
} fake;

/* A fake data set of `n` images of h x w and `nl` labels for `prefix`
 * (train or t10k). Pixel i of image k is (k * 7 + i) % 256; label k is
 * (k * 3) % 10, except 10 (invalid) at index bad_label_at. */
static void make_fake(fake *f, const char *prefix, int n, int h, int w, int nl, int bad_label_at) {
  snprintf(f->dir, sizeof f->dir, "%s/fm_XXXXXX", SPARQ_TEST_TMP);
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->images, sizeof f->images, "%s/%s-images-idx3-ubyte.gz", f->dir, prefix);
  snprintf(f->labels, sizeof f->labels, "%s/%s-labels-idx1-ubyte.gz", f->dir, prefix);
  uint8_t *px = malloc((size_t)n * h * w), *lb = malloc((size_t)nl);
  for (int k = 0; k < n; k++)
    for (int i = 0; i < h * w; i++) px[(size_t)k * h * w + i] = (uint8_t)((k * 7 + i) % 256);
  for (int k = 0; k < nl; k++) lb[k] = (uint8_t)(k == bad_label_at ? 10 : (k * 3) % 10);
  int idims[3] = {n, h, w}, ldims[1] = {nl};
  write_idx_gz(f->images, idims, 3, px);
  write_idx_gz(f->labels, ldims, 1, lb);
  free(px);
  free(lb);
}

static void remove_fake(fake *f) {
  unlink(f->images);
  unlink(f->labels);
  rmdir(f->dir);
}

static void scales_to_minus_one_one_exactly(void **state) {
  (void)state;
  fake f;
  make_fake(&f, "t10k", 3, 28, 28, 3, -1);
  /* dir NULL: the environment variable decides */
  setenv("SPARQ_FASHION_MNIST_DIR", f.dir, 1);
  sparq_fashion_mnist ds;
  assert_int_equal(sparq_fashion_mnist_load(NULL, SPARQ_SPLIT_TEST, false, 0, &ds), SPARQ_OK);
  unsetenv("SPARQ_FASHION_MNIST_DIR");
  assert_int_equal(ds.n, 3);
  assert_int_equal(ds.side, 28);
  bool saw_min = false, saw_max = false;
  for (int k = 0; k < 3; k++) {
    assert_int_equal(ds.labels[k], (k * 3) % 10);
    for (int i = 0; i < 784; i++) {
      int u = (k * 7 + i) % 256;
      float v = ds.images[k * 784 + i];
      assert_true(v == (float)u / 127.5f - 1.0f);
      if (u == 0) saw_min = true, assert_true(v == -1.0f);
      if (u == 255) saw_max = true, assert_true(v == 1.0f);
    }
  }
  assert_true(saw_min && saw_max);
  sparq_fashion_mnist_free(&ds);
  sparq_fashion_mnist_free(&ds);

  /* limit keeps the first samples */
  assert_int_equal(sparq_fashion_mnist_load(f.dir, SPARQ_SPLIT_TEST, false, 2, &ds), SPARQ_OK);
  assert_int_equal(ds.n, 2);
  assert_true(ds.images[784] == (float)7 / 127.5f - 1.0f);
  sparq_fashion_mnist_free(&ds);
  remove_fake(&f);
}

static void pad32_frames_with_black(void **state) {
  (void)state;
  fake f;
  make_fake(&f, "train", 2, 28, 28, 2, -1);
  sparq_fashion_mnist ds;
  assert_int_equal(sparq_fashion_mnist_load(f.dir, SPARQ_SPLIT_TRAIN, true, 0, &ds), SPARQ_OK);
  assert_int_equal(ds.side, 32);
  for (int k = 0; k < 2; k++)
    for (int y = 0; y < 32; y++)
      for (int x = 0; x < 32; x++) {
        float v = ds.images[k * 1024 + y * 32 + x];
        bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        float want = inside ? (float)((k * 7 + (y - 2) * 28 + (x - 2)) % 256) / 127.5f - 1.0f : -1.0f;
        assert_true(v == want);
      }
  sparq_fashion_mnist_free(&ds);
  remove_fake(&f);
}

static void malformed_sets_are_format_errors(void **state) {
  (void)state;
  sparq_fashion_mnist ds;
  fake f;
  /* 3 images, 2 labels */
  make_fake(&f, "t10k", 3, 28, 28, 2, -1);
  assert_int_equal(sparq_fashion_mnist_load(f.dir, SPARQ_SPLIT_TEST, false, 0, &ds), SPARQ_ERR_FORMAT);
  assert_null(ds.images);
  assert_true(!strncmp(sparq_last_error(), f.labels, strlen(f.labels)));
  assert_non_null(strstr(sparq_last_error(), "2 labels"));
  assert_non_null(strstr(sparq_last_error(), "3 images"));
  remove_fake(&f);
  /* images that are not 28 x 28 */
  make_fake(&f, "t10k", 2, 27, 28, 2, -1);
  assert_int_equal(sparq_fashion_mnist_load(f.dir, SPARQ_SPLIT_TEST, false, 0, &ds), SPARQ_ERR_FORMAT);
  assert_true(!strncmp(sparq_last_error(), f.images, strlen(f.images)));
  assert_non_null(strstr(sparq_last_error(), "2 x 27 x 28"));
  remove_fake(&f);
  /* a label outside 0..9 */
  make_fake(&f, "t10k", 2, 28, 28, 2, 1);
  assert_int_equal(sparq_fashion_mnist_load(f.dir, SPARQ_SPLIT_TEST, false, 0, &ds), SPARQ_ERR_FORMAT);
  assert_non_null(strstr(sparq_last_error(), "label 10 at index 1"));
  remove_fake(&f);
  assert_int_equal(sparq_fashion_mnist_load(f.dir, (sparq_split)7, false, 0, &ds), SPARQ_ERR_ARG);
}

static void missing_set_names_the_package(void **state) {
  (void)state;
  char dir[512], want[1024];
  snprintf(dir, sizeof dir, "%s/fm_empty_XXXXXX", SPARQ_TEST_TMP);
  assert_non_null(mkdtemp(dir));
  sparq_fashion_mnist ds;
  assert_int_equal(sparq_fashion_mnist_load(dir, SPARQ_SPLIT_TEST, false, 0, &ds), SPARQ_ERR_NOT_FOUND);
  snprintf(want, sizeof want, "%s/t10k-images-idx3-ubyte.gz: not found (install the Debian package dataset-fashion-mnist)",
           dir);
  assert_string_equal(sparq_last_error(), want);
  rmdir(dir);
  /* a directory that does not exist at all, through the environment */
  setenv("SPARQ_FASHION_MNIST_DIR", "/nonexistent/sparq-fm", 1);
  assert_int_equal(sparq_fashion_mnist_load(NULL, SPARQ_SPLIT_TRAIN, false, 0, &ds), SPARQ_ERR_NOT_FOUND);
  assert_string_equal(sparq_last_error(), "/nonexistent/sparq-fm/train-images-idx3-ubyte.gz: not found "
                                          "(install the Debian package dataset-fashion-mnist)");
  unsetenv("SPARQ_FASHION_MNIST_DIR");
  assert_string_equal(sparq_fashion_mnist_class_name(0), "T-shirt/top");
  assert_string_equal(sparq_fashion_mnist_class_name(9), "Ankle boot");
  assert_string_equal(sparq_fashion_mnist_class_name(10), "?");
}

static void real_data_when_installed(void **state) {
  (void)state;
  if (access(SPARQ_FASHION_MNIST_DEFAULT_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
    print_message("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist); skipping\n");
    skip();
  }
  const sparq_split splits[2] = {SPARQ_SPLIT_TEST, SPARQ_SPLIT_TRAIN};
  const int64_t sizes[2] = {10000, 60000};
  for (int s = 0; s < 2; s++) {
    sparq_fashion_mnist ds;
    assert_int_equal(sparq_fashion_mnist_load(SPARQ_FASHION_MNIST_DEFAULT_DIR, splits[s], false, 0, &ds), SPARQ_OK);
    assert_int_equal(ds.n, sizes[s]);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < ds.n; i++) {
      assert_in_range(ds.labels[i], 0, 9);
      per_class[ds.labels[i]]++;
    }
    for (int c = 0; c < 10; c++) assert_int_equal(per_class[c], sizes[s] / 10); /* balanced */
    assert_int_equal(ds.labels[0], 9); /* both splits start with an ankle boot */
    sparq_fashion_mnist_free(&ds);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scales_to_minus_one_one_exactly),
      cmocka_unit_test(pad32_frames_with_black),
      cmocka_unit_test(malformed_sets_are_format_errors),
      cmocka_unit_test(missing_set_names_the_package),
      cmocka_unit_test(real_data_when_installed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
