/* GIF writer: frames, delays, looping and pixels survive a round trip
 * through giflib's reader; RGB goes through the fixed colour cube. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <gif_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sparq/base.h"
#include "sparq/image.h"

static void make_dir(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s_XXXXXX", SPARQ_TEST_TMP, name);
  assert_non_null(mkdtemp(out));
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

static void remove_file_and_dir(const char *file, const char *dir) {
  unlink(file);
  rmdir(dir);
}

static GifFileType *slurp(const char *path) {
  int err = 0;
  GifFileType *gif = DGifOpenFileName(path, &err);
  assert_non_null(gif);
  assert_int_equal(DGifSlurp(gif), GIF_OK);
  return gif;
}

/* True when the blocks before the first frame hold NETSCAPE2.0 with count 0. */
static bool loops_forever(const GifFileType *gif) {
  const SavedImage *s = &gif->SavedImages[0];
  for (int i = 0; i + 1 < s->ExtensionBlockCount; i++) {
    const ExtensionBlock *b = &s->ExtensionBlocks[i], *next = &s->ExtensionBlocks[i + 1];
    if (b->Function == APPLICATION_EXT_FUNC_CODE && b->ByteCount == 11 && !memcmp(b->Bytes, "NETSCAPE2.0", 11))
      return next->Function == CONTINUE_EXT_FUNC_CODE && next->ByteCount == 3 && next->Bytes[0] == 1 &&
             next->Bytes[1] == 0 && next->Bytes[2] == 0;
  }
  return false;
}

static void gray_frames_round_trip(void **state) {
  (void)state;
  enum { F = 5, H = 20, W = 30 };
  uint8_t *frames = malloc(F * H * W);
  for (int f = 0; f < F; f++)
    for (int i = 0; i < H * W; i++) frames[f * H * W + i] = (uint8_t)(i * 37 + f * 51);
  char dir[512], path[600];
  make_dir(dir, sizeof dir, "gif");
  snprintf(path, sizeof path, "%s/v.gif", dir);
  assert_int_equal(sparq_gif_write(path, frames, F, H, W, 1, 7, true), SPARQ_OK);
  assert_int_equal(count_entries(dir), 1); /* no temporary file left */

  GifFileType *gif = slurp(path);
  assert_int_equal(gif->ImageCount, F);
  assert_int_equal(gif->SWidth, W);
  assert_int_equal(gif->SHeight, H);
  assert_true(loops_forever(gif));
  const ColorMapObject *map = gif->SColorMap;
  assert_non_null(map);
  for (int f = 0; f < F; f++) {
    const SavedImage *s = &gif->SavedImages[f];
    assert_int_equal(s->ImageDesc.Width, W);
    assert_int_equal(s->ImageDesc.Height, H);
    GraphicsControlBlock gcb;
    assert_int_equal(DGifSavedExtensionToGCB(gif, f, &gcb), GIF_OK);
    assert_int_equal(gcb.DelayTime, 7);
    assert_int_equal(gcb.TransparentColor, NO_TRANSPARENT_COLOR);
    for (int i = 0; i < H * W; i++) {
      GifColorType c = map->Colors[s->RasterBits[i]];
      assert_int_equal(c.Red, frames[f * H * W + i]);
      assert_int_equal(c.Green, c.Red);
      assert_int_equal(c.Blue, c.Red);
    }
  }
  int err;
  DGifCloseFile(gif, &err);

  /* loop = false: no NETSCAPE block, plays once */
  assert_int_equal(sparq_gif_write(path, frames, 1, H, W, 1, 0, false), SPARQ_OK);
  gif = slurp(path);
  assert_int_equal(gif->ImageCount, 1);
  assert_false(loops_forever(gif));
  DGifCloseFile(gif, &err);
  free(frames);
  remove_file_and_dir(path, dir);
}

static int absdiff(int a, int b) { return a > b ? a - b : b - a; }

static void rgb_frames_through_palette(void **state) {
  (void)state;
  enum { F = 3, H = 16, W = 24 };
  uint8_t *frames = malloc(F * H * W * 3);
  sparq_rng rng = sparq_rng_make(5, 0);
  for (int i = 0; i < F * H * W * 3; i++) frames[i] = (uint8_t)sparq_rng_u32(&rng);
  /* exact cube colours, black, white */
  const uint8_t exact[4][3] = {{0, 0, 0}, {255, 255, 255}, {51, 128, 204}, {255, 43, 0}};
  memcpy(frames, exact, sizeof exact);
  char dir[512], path[600];
  make_dir(dir, sizeof dir, "gifrgb");
  snprintf(path, sizeof path, "%s/c.gif", dir);
  assert_int_equal(sparq_gif_write(path, frames, F, H, W, 3, 4, true), SPARQ_OK);

  GifFileType *gif = slurp(path);
  assert_int_equal(gif->ImageCount, F);
  const ColorMapObject *map = gif->SColorMap;
  for (int f = 0; f < F; f++) {
    const SavedImage *s = &gif->SavedImages[f];
    for (int i = 0; i < H * W; i++) {
      const uint8_t *want = frames + ((size_t)f * H * W + i) * 3;
      int idx = s->RasterBits[i];
      assert_int_equal(idx, sparq_gif_rgb_index(want[0], want[1], want[2]));
      GifColorType c = map->Colors[idx];
      assert_true(absdiff(c.Red, want[0]) <= 25);
      assert_true(absdiff(c.Green, want[1]) <= 21);
      assert_true(absdiff(c.Blue, want[2]) <= 25);
      uint8_t rgb[3];
      sparq_gif_rgb_color(idx, rgb);
      assert_int_equal(c.Red, rgb[0]);
      assert_int_equal(c.Green, rgb[1]);
      assert_int_equal(c.Blue, rgb[2]);
    }
  }
  for (int k = 0; k < 4; k++) {
    GifColorType c = map->Colors[gif->SavedImages[0].RasterBits[k]];
    assert_int_equal(c.Red, exact[k][0]);
    assert_int_equal(c.Green, exact[k][1]);
    assert_int_equal(c.Blue, exact[k][2]);
  }
  int err;
  DGifCloseFile(gif, &err);
  free(frames);
  remove_file_and_dir(path, dir);
}

static void palette_is_a_nearest_cube(void **state) {
  (void)state;
  /* every index is used by its own colour, and the mapping is nearest per channel */
  for (int i = 0; i < 252; i++) {
    uint8_t rgb[3];
    sparq_gif_rgb_color(i, rgb);
    assert_int_equal(sparq_gif_rgb_index(rgb[0], rgb[1], rgb[2]), i);
  }
  for (int v = 0; v < 256; v++) {
    uint8_t got[3];
    sparq_gif_rgb_color(sparq_gif_rgb_index((uint8_t)v, (uint8_t)v, (uint8_t)v), got);
    for (int i = 0; i < 252; i++) { /* no palette entry is closer in red */
      uint8_t c[3];
      sparq_gif_rgb_color(i, c);
      assert_true(absdiff(got[0], v) <= absdiff(c[0], v));
      assert_true(absdiff(got[1], v) <= absdiff(c[1], v));
    }
  }
}

static void bad_arguments_and_paths(void **state) {
  (void)state;
  uint8_t px[4] = {0};
  char dir[512], path[700];
  make_dir(dir, sizeof dir, "giferr");
  snprintf(path, sizeof path, "%s/x.gif", dir);
  assert_int_equal(sparq_gif_write(path, px, 0, 2, 2, 1, 5, true), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gif_write(path, px, 1, 2, 2, 1, -1, true), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gif_write(path, px, 1, 2, 2, 1, 65536, true), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gif_write(path, px, 1, 2, 2, 4, 5, true), SPARQ_ERR_ARG);
  assert_int_equal(sparq_gif_write(path, NULL, 1, 2, 2, 1, 5, true), SPARQ_ERR_ARG);
  snprintf(path, sizeof path, "%s/missing/x.gif", dir);
  assert_int_not_equal(sparq_gif_write(path, px, 1, 2, 2, 1, 5, true), SPARQ_OK);
  assert_true(!strncmp(sparq_last_error(), path, strlen(path)));
  assert_int_equal(count_entries(dir), 0);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gray_frames_round_trip),
      cmocka_unit_test(rgb_frames_through_palette),
      cmocka_unit_test(palette_is_a_nearest_cube),
      cmocka_unit_test(bad_arguments_and_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
