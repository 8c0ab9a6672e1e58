/* Tiling many small images into one labelled grid (sample sheets). */
#include <string.h>

#include "io/image_internal.h"

sparq_grid_options sparq_grid_options_default(void) {
  return (sparq_grid_options){
      .cols = 0,
      .scale = 1,
      .border = 2,
      .text_scale = 1,
      .background = {48, 48, 48},
      .text_color = {255, 255, 255},
  };
}

static sparq_status check_options(const sparq_grid_options *o, int n) {
  if (o->cols < 0 || o->cols > SPARQ_IMAGE_MAX_SIDE)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_image_grid: cols %d is outside 0..%d", o->cols, SPARQ_IMAGE_MAX_SIDE);
  if (o->scale < 1 || o->scale > 64)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_image_grid: scale %d is outside 1..64", o->scale);
  if (o->border < 0 || o->border > 1024)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_image_grid: border %d is outside 0..1024", o->border);
  if (o->text_scale < 1 || o->text_scale > 64)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_image_grid: text_scale %d is outside 1..64", o->text_scale);
  if (n < 1) return sparq_fail(SPARQ_ERR_ARG, "sparq_image_grid: %d images (need at least 1)", n);
  return SPARQ_OK;
}

/* Nearest-neighbour upscale of one tile into the grid at (x0, y0). */
static void blit_tile(sparq_image *out, const uint8_t *tile, int tile_h, int tile_w, int scale, int x0, int y0) {
  const size_t ch = (size_t)out->channels;
  for (int y = 0; y < tile_h * scale; y++) {
    const uint8_t *src_row = tile + (size_t)(y / scale) * (size_t)tile_w * ch;
    uint8_t *dst = out->pixels + ((size_t)(y0 + y) * (size_t)out->width + (size_t)x0) * ch;
    for (int x = 0; x < tile_w * scale; x++) memcpy(dst + (size_t)x * ch, src_row + (size_t)(x / scale) * ch, ch);
  }
}

/* Draws `label` centred in [x0, x0 + width), cut at the last whole character
 * that fits so it never spills into the next cell. */
static void draw_label(sparq_image *out, const char *label, int x0, int y0, int width, const sparq_grid_options *o) {
  if (!label || !*label) return;
  char buf[256];
  /* k characters take (6k - 1) * text_scale pixels. */
  size_t fit = (size_t)((width / o->text_scale + (SPARQ_FONT_ADVANCE - SPARQ_FONT_WIDTH)) / SPARQ_FONT_ADVANCE);
  size_t len = strlen(label);
  if (len > fit) len = fit;
  if (len > sizeof buf - 1) len = sizeof buf - 1;
  if (len == 0) return;
  memcpy(buf, label, len);
  buf[len] = '\0';
  int x = x0 + (width - sparq_text_width(buf, o->text_scale)) / 2;
  sparq_image_draw_text(out, x, y0, buf, o->text_scale, o->text_color);
}

sparq_status sparq_image_grid(const uint8_t *tiles, int n, int tile_h, int tile_w, int channels,
                              const char *const *labels, const sparq_grid_options *opt, sparq_image *out) {
  size_t tile_bytes = 0;
  memset(out, 0, sizeof *out);
  sparq_grid_options o = opt ? *opt : sparq_grid_options_default();
  sparq_status st = check_options(&o, n);
  if (st) return st;
  st = image_check_shape("sparq_image_grid", tile_h, tile_w, channels, &tile_bytes);
  if (st) return st;
  if (!tiles) return sparq_fail(SPARQ_ERR_ARG, "sparq_image_grid: NULL tiles");

  int cols = o.cols;
  if (cols == 0)
    while ((long long)cols * cols < n) cols++;
  int rows = (n + cols - 1) / cols;
  const int label_h = labels ? SPARQ_FONT_HEIGHT * o.text_scale + 2 : 0;
  /* 64-bit so that absurd options are reported instead of wrapping. */
  const long long cell_w = (long long)tile_w * o.scale, cell_h = (long long)tile_h * o.scale + label_h;
  const long long width = o.border + cols * (cell_w + o.border);
  const long long height = o.border + rows * (cell_h + o.border);
  if (width > SPARQ_IMAGE_MAX_SIDE || height > SPARQ_IMAGE_MAX_SIDE)
    return sparq_fail(SPARQ_ERR_ARG,
                      "sparq_image_grid: %d rows x %d columns of %d x %d tiles at scale %d make %lld x %lld pixels "
                      "(limit %d per side)",
                      rows, cols, tile_h, tile_w, o.scale, height, width, SPARQ_IMAGE_MAX_SIDE);

  st = sparq_image_alloc(out, (int)height, (int)width, channels);
  if (st) return st;
  sparq_image_fill_rect(out, 0, 0, out->width, out->height, o.background);
  for (int i = 0; i < n; i++) {
    int x0 = o.border + (i % cols) * (int)(cell_w + o.border);
    int y0 = o.border + (i / cols) * (int)(cell_h + o.border);
    blit_tile(out, tiles + (size_t)i * tile_bytes, tile_h, tile_w, o.scale, x0, y0);
    if (labels) draw_label(out, labels[i], x0, y0 + tile_h * o.scale + 1, (int)cell_w, &o);
  }
  return SPARQ_OK;
}
