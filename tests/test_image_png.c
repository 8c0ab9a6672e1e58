/* PNG writer: pixels survive a round trip through libpng's reader, floats map
 * to bytes exactly, writes are atomic and failures are clean errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sparq/base.h"
#include "sparq/image.h"

/* A fresh empty directory under SPARQ_TEST_TMP. */
static void make_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s_XXXXXX", SPARQ_TEST_TMP, name);
  assert_non_null(mkdtemp(out));
}

/* Number of entries in dir (without . and ..); the first is copied to first. */
static int count_entries(const char *dir, char *first, size_t size) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n++ == 0 && first) snprintf(first, size, "%s", e->d_name);
  }
  closedir(d);
  return n;
}

static void remove_flat_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  char path[4096];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path)) rmdir(path);
  }
  closedir(d);
  rmdir(dir);
}

/* Reads a PNG with libpng's simplified API, checking its stored format. */
static uint8_t *read_png(const char *path, int *h, int *w, int channels) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  assert_true(png_image_begin_read_from_file(&img, path));
  /* gray must be stored as gray, RGB as RGB, both without alpha */
  assert_int_equal(img.format & PNG_FORMAT_FLAG_COLOR, channels == 3 ? PNG_FORMAT_FLAG_COLOR : 0);
  assert_int_equal(img.format & PNG_FORMAT_FLAG_ALPHA, 0);
  img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
  assert_non_null(buf);
  assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
  *h = (int)img.height;
  *w = (int)img.width;
  return buf;
}

static void round_trip(int channels) {
  char dir[512], path[600], name[256];
  make_dir(dir, sizeof dir, "png");
  snprintf(path, sizeof path, "%s/img.png", dir);
  const int H = 37, W = 53;
  uint8_t *px = malloc((size_t)H * W * channels);
  for (int i = 0; i < H * W * channels; i++) px[i] = (uint8_t)(i * 131 + (i >> 7) * 7); /* all 256 values, scrambled */
  assert_int_equal(sparq_png_write(path, px, H, W, channels), SPARQ_OK);
  int h, w;
  uint8_t *back = read_png(path, &h, &w, channels);
  assert_int_equal(h, H);
  assert_int_equal(w, W);
  assert_memory_equal(back, px, (size_t)H * W * channels);
  /* only the image is left: the temporary file was renamed, not copied */
  assert_int_equal(count_entries(dir, name, sizeof name), 1);
  assert_string_equal(name, "img.png");
  /* overwriting an existing file works and is still atomic */
  memset(px, 200, (size_t)H * W * channels);
  assert_int_equal(sparq_png_write(path, px, H, W, channels), SPARQ_OK);
  free(back);
  back = read_png(path, &h, &w, channels);
  assert_memory_equal(back, px, (size_t)H * W * channels);
  assert_int_equal(count_entries(dir, NULL, 0), 1);
  free(back);
  free(px);
  remove_flat_dir(dir);
}

static void gray_round_trip(void **state) {
  (void)state;
  round_trip(1);
}

static void rgb_round_trip(void **state) {
  (void)state;
  round_trip(3);
}

static void floats_map_exactly(void **state) {
  (void)state;
  /* u / 127.5 - 1 (the data loaders' scaling) must come back as u. */
  float f[256];
  uint8_t u[256];
  for (int i = 0; i < 256; i++) f[i] = (float)i / 127.5f - 1.0f;
  assert_int_equal(sparq_image_u8_from_f32(u, f, 16, 16, 1, -1.0f, 1.0f, false), SPARQ_OK);
  for (int i = 0; i < 256; i++) assert_int_equal(u[i], i);
  for (int i = 0; i < 256; i++) f[i] = (float)i / 255.0f;
  assert_int_equal(sparq_image_u8_from_f32(u, f, 16, 16, 1, 0.0f, 1.0f, false), SPARQ_OK);
  for (int i = 0; i < 256; i++) assert_int_equal(u[i], i);
  /* clamping and NaN */
  float odd[3] = {-5.0f, 7.0f, NAN};
  uint8_t o[3];
  assert_int_equal(sparq_image_u8_from_f32(o, odd, 1, 1, 3, -1.0f, 1.0f, false), SPARQ_OK);
  assert_int_equal(o[0], 0);
  assert_int_equal(o[1], 255);
  assert_int_equal(o[2], 0);
  /* planar CHW input becomes interleaved: 2 x 1 pixels, 3 channels */
  float chw[6] = {0, 1, 0.5f, 0.5f, 1, 0}; /* R plane, G plane, B plane */
  uint8_t hwc[6];
  assert_int_equal(sparq_image_u8_from_f32(hwc, chw, 1, 2, 3, 0.0f, 1.0f, true), SPARQ_OK);
  const uint8_t want[6] = {0, 128, 255, 255, 128, 0};
  assert_memory_equal(hwc, want, 6);
  assert_int_equal(sparq_image_u8_from_f32(hwc, chw, 1, 2, 3, 1.0f, 1.0f, true), SPARQ_ERR_ARG);

  char dir[512], path[600];
  make_dir(dir, sizeof dir, "pngf");
  snprintf(path, sizeof path, "%s/f.png", dir);
  for (int i = 0; i < 256; i++) f[i] = (float)i / 127.5f - 1.0f;
  assert_int_equal(sparq_png_write_f32(path, f, 16, 16, 1, -1.0f, 1.0f), SPARQ_OK);
  int h, w;
  uint8_t *back = read_png(path, &h, &w, 1);
  for (int i = 0; i < 256; i++) assert_int_equal(back[i], i);
  free(back);
  remove_flat_dir(dir);
}

static void failures_are_clean_errors(void **state) {
  (void)state;
  uint8_t px[12] = {0};
  char dir[512], path[700];
  make_dir(dir, sizeof dir, "pngerr");

  /* a directory that does not exist is not created */
  snprintf(path, sizeof path, "%s/missing/x.png", dir);
  assert_int_not_equal(sparq_png_write(path, px, 2, 2, 3), SPARQ_OK);
  assert_true(!strncmp(sparq_last_error(), path, strlen(path))); /* the message starts with the path */
  struct stat sb;
  assert_int_not_equal(stat(path, &sb), 0);

  /* the destination is a directory: everything succeeds until the rename,
   * and the temporary file must not survive that failure */
  snprintf(path, sizeof path, "%s/adir", dir);
  assert_int_equal(mkdir(path, 0777), 0);
  assert_int_equal(sparq_png_write(path, px, 2, 2, 3), SPARQ_ERR_IO);
  assert_true(!strncmp(sparq_last_error(), path, strlen(path)));
  assert_int_equal(count_entries(dir, NULL, 0), 1); /* only adir */
  assert_int_equal(count_entries(path, NULL, 0), 0);

  /* a read-only directory (root writes anyway, so only checked for others) */
  if (geteuid() != 0) {
    snprintf(path, sizeof path, "%s/ro", dir);
    assert_int_equal(mkdir(path, 0555), 0);
    snprintf(path, sizeof path, "%s/ro/x.png", dir);
    assert_int_equal(sparq_png_write(path, px, 2, 2, 3), SPARQ_ERR_IO);
    assert_true(!strncmp(sparq_last_error(), path, strlen(path)));
    snprintf(path, sizeof path, "%s/ro", dir);
    assert_int_equal(count_entries(path, NULL, 0), 0);
    assert_int_equal(rmdir(path), 0);
  }

  /* bad shapes fail before any file is made */
  snprintf(path, sizeof path, "%s/bad.png", dir);
  assert_int_equal(sparq_png_write(path, px, 2, 2, 2), SPARQ_ERR_ARG);
  assert_int_equal(sparq_png_write(path, px, 0, 2, 1), SPARQ_ERR_ARG);
  assert_int_equal(sparq_png_write(path, NULL, 2, 2, 1), SPARQ_ERR_ARG);
  assert_int_equal(sparq_png_write(path, px, SPARQ_IMAGE_MAX_SIDE + 1, 1, 1), SPARQ_ERR_ARG);
  assert_int_equal(count_entries(dir, NULL, 0), 1);
  remove_flat_dir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gray_round_trip),
      cmocka_unit_test(rgb_round_trip),
      cmocka_unit_test(floats_map_exactly),
      cmocka_unit_test(failures_are_clean_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
