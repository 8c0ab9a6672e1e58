/* Image grids and the bitmap font: layout arithmetic, upscaling, and labels
 * whose glyphs land where the header says. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/image.h"

static uint8_t px(const sparq_image *img, int x, int y, int c) {
  return img->pixels[((size_t)y * img->width + x) * img->channels + c];
}

static void layout_and_upscale(void **state) {
  (void)state;
  /* three 2 x 3 gray tiles, each pixel distinct */
  uint8_t tiles[3 * 6];
  for (int i = 0; i < 18; i++) tiles[i] = (uint8_t)(100 + i);
  sparq_grid_options o = sparq_grid_options_default();
  o.scale = 2;
  o.border = 1;
  o.background[0] = 7;
  sparq_image g;
  assert_int_equal(sparq_image_grid(tiles, 3, 2, 3, 1, NULL, &o, &g), SPARQ_OK);
  /* 3 tiles -> 2 columns, 2 rows; cells 6 x 4 plus 1-pixel borders */
  assert_int_equal(g.channels, 1);
  assert_int_equal(g.width, 1 + 2 * (6 + 1));
  assert_int_equal(g.height, 1 + 2 * (4 + 1));
  for (int i = 0; i < 3; i++) {
    int x0 = 1 + (i % 2) * 7, y0 = 1 + (i / 2) * 5;
    for (int y = 0; y < 4; y++)
      for (int x = 0; x < 6; x++) assert_int_equal(px(&g, x0 + x, y0 + y, 0), tiles[i * 6 + (y / 2) * 3 + x / 2]);
    assert_int_equal(px(&g, x0 - 1, y0, 0), 7); /* border left of the tile */
  }
  for (int y = 6; y < 10; y++) /* the fourth cell is empty */
    for (int x = 8; x < 14; x++) assert_int_equal(px(&g, x, y, 0), 7);
  sparq_image_free(&g);
  sparq_image_free(&g); /* twice is fine */
}

static void grids_are_nearly_square(void **state) {
  (void)state;
  uint8_t *tiles = calloc(100, 1);
  const int n[] = {1, 2, 10, 64, 100}, cols[] = {1, 2, 4, 8, 10}, rows[] = {1, 1, 3, 8, 10};
  sparq_grid_options o = sparq_grid_options_default();
  o.border = 0;
  for (int k = 0; k < 5; k++) {
    sparq_image g;
    assert_int_equal(sparq_image_grid(tiles, n[k], 1, 1, 1, NULL, &o, &g), SPARQ_OK);
    assert_int_equal(g.width, cols[k]);
    assert_int_equal(g.height, rows[k]);
    sparq_image_free(&g);
  }
  o.cols = 3; /* explicit columns win */
  sparq_image g;
  assert_int_equal(sparq_image_grid(tiles, 10, 1, 1, 1, NULL, &o, &g), SPARQ_OK);
  assert_int_equal(g.width, 3);
  assert_int_equal(g.height, 4);
  sparq_image_free(&g);
  free(tiles);
}

/* The capital T, typed here independently of the font table. */
static const char *const T_GLYPH[SPARQ_FONT_HEIGHT] = {"#####", "..#..", "..#..", "..#..", "..#..",
                                                       "..#..", "..#..", ".....", "....."};

static void label_glyph_lands_in_place(void **state) {
  (void)state;
  enum { TH = 10, TW = 20 };
  uint8_t tile[TH * TW];
  memset(tile, 90, sizeof tile);
  const char *labels[1] = {"T"};
  for (int ts = 1; ts <= 2; ts++) {
    sparq_grid_options o = sparq_grid_options_default();
    o.border = 2;
    o.text_scale = ts;
    sparq_image g;
    assert_int_equal(sparq_image_grid(tile, 1, TH, TW, 1, labels, &o, &g), SPARQ_OK);
    const int strip = SPARQ_FONT_HEIGHT * ts + 2;
    assert_int_equal(g.height, 2 + TH + strip + 2);
    assert_int_equal(g.width, 2 + TW + 2);
    /* centred under the tile, one background row below it */
    const int x0 = 2 + (TW - SPARQ_FONT_WIDTH * ts) / 2, y0 = 2 + TH + 1;
    for (int y = 2 + TH; y < 2 + TH + strip; y++)
      for (int x = 0; x < g.width; x++) {
        int r = (y - y0) / ts, c = (x - x0) / ts;
        bool inside = y >= y0 && x >= x0 && r < SPARQ_FONT_HEIGHT && c < SPARQ_FONT_WIDTH;
        bool ink = inside && T_GLYPH[r][c] == '#';
        assert_int_equal(px(&g, x, y, 0), ink ? 255 : 48);
      }
    assert_int_equal(px(&g, 2, 2, 0), 90);
    sparq_image_free(&g);
  }
}

static void long_labels_are_cut_to_whole_characters(void **state) {
  (void)state;
  /* 12 pixels hold two characters (6 + 5), not three */
  uint8_t tile[2 * 4 * 12] = {0}; /* room for two tiles */
  const char *abc[1] = {"ABC"}, *ab[1] = {"AB"};
  sparq_image g1, g2;
  assert_int_equal(sparq_image_grid(tile, 1, 4, 12, 1, abc, NULL, &g1), SPARQ_OK);
  assert_int_equal(sparq_image_grid(tile, 1, 4, 12, 1, ab, NULL, &g2), SPARQ_OK);
  assert_memory_equal(g1.pixels, g2.pixels, (size_t)g1.width * g1.height);
  sparq_image_free(&g1);
  sparq_image_free(&g2);
  /* NULL and empty labels draw nothing; labels still reserve the strip */
  const char *none[2] = {NULL, ""};
  assert_int_equal(sparq_image_grid(tile, 2, 4, 12, 1, none, NULL, &g1), SPARQ_OK);
  assert_int_equal(g1.height, 2 + 4 + SPARQ_FONT_HEIGHT + 2 + 2);
  for (size_t i = 0; i < (size_t)g1.width * g1.height; i++) assert_true(g1.pixels[i] == 0 || g1.pixels[i] == 48);
  sparq_image_free(&g1);
}

static void rgb_text_and_clipping(void **state) {
  (void)state;
  sparq_image img;
  assert_int_equal(sparq_image_alloc(&img, 12, 8, 3), SPARQ_OK);
  const uint8_t red[3] = {255, 0, 0};
  /* partly outside on every side: must clip, not write out of bounds */
  sparq_image_draw_text(&img, -3, -4, "Hg~", 2, red);
  sparq_image_draw_text(&img, 5, 9, "W", 3, red);
  sparq_image_draw_text(&img, -100000, 0, "x", 1, red);
  sparq_image_fill_rect(&img, -5, -5, 1000, 6, red); /* covers row 0 only */
  for (int x = 0; x < 8; x++) assert_int_equal(px(&img, x, 0, 0), 255);
  assert_int_equal(px(&img, 0, 0, 1), 0);
  sparq_image_free(&img);
  assert_int_equal(sparq_text_width("", 1), 0);
  assert_int_equal(sparq_text_width("ab", 1), 11);
  assert_int_equal(sparq_text_width("ab", 3), 33);
  /* every printable glyph has ink except space, and a non-ASCII byte draws as '?' */
  sparq_image a, b;
  assert_int_equal(sparq_image_alloc(&a, SPARQ_FONT_HEIGHT, SPARQ_FONT_WIDTH, 1), SPARQ_OK);
  assert_int_equal(sparq_image_alloc(&b, SPARQ_FONT_HEIGHT, SPARQ_FONT_WIDTH, 1), SPARQ_OK);
  const uint8_t white[3] = {255, 255, 255};
  for (int ch = 33; ch < 127; ch++) {
    char s[2] = {(char)ch, 0};
    memset(a.pixels, 0, SPARQ_FONT_HEIGHT * SPARQ_FONT_WIDTH);
    sparq_image_draw_text(&a, 0, 0, s, 1, white);
    int ink = 0;
    for (int i = 0; i < SPARQ_FONT_HEIGHT * SPARQ_FONT_WIDTH; i++) ink += a.pixels[i] != 0;
    assert_true(ink > 0);
  }
  memset(a.pixels, 0, SPARQ_FONT_HEIGHT * SPARQ_FONT_WIDTH);
  sparq_image_draw_text(&a, 0, 0, "\xe9", 1, white);
  sparq_image_draw_text(&b, 0, 0, "?", 1, white);
  assert_memory_equal(a.pixels, b.pixels, SPARQ_FONT_HEIGHT * SPARQ_FONT_WIDTH);
  sparq_image_free(&a);
  sparq_image_free(&b);
}

static void bad_grid_arguments(void **state) {
  (void)state;
  uint8_t tile[4] = {0};
  sparq_image g;
  sparq_grid_options o = sparq_grid_options_default();
  assert_int_equal(sparq_image_grid(tile, 0, 2, 2, 1, NULL, &o, &g), SPARQ_ERR_ARG);
  assert_null(g.pixels);
  assert_int_equal(sparq_image_grid(tile, 1, 2, 2, 2, NULL, &o, &g), SPARQ_ERR_ARG);
  assert_int_equal(sparq_image_grid(NULL, 1, 2, 2, 1, NULL, &o, &g), SPARQ_ERR_ARG);
  o.scale = 0;
  assert_int_equal(sparq_image_grid(tile, 1, 2, 2, 1, NULL, &o, &g), SPARQ_ERR_ARG);
  o = sparq_grid_options_default();
  o.scale = 64;
  o.cols = 1000; /* 1000 * 128 pixels is past the size limit */
  assert_int_equal(sparq_image_grid(tile, 1, 2, 2, 1, NULL, &o, &g), SPARQ_ERR_ARG);
  assert_non_null(strstr(sparq_last_error(), "sparq_image_grid"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(layout_and_upscale),
      cmocka_unit_test(grids_are_nearly_square),
      cmocka_unit_test(label_glyph_lands_in_place),
      cmocka_unit_test(long_labels_are_cut_to_whole_characters),
      cmocka_unit_test(rgb_text_and_clipping),
      cmocka_unit_test(bad_grid_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
