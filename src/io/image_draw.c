/* Drawing on a sparq_image: filled rectangles and text in the built-in font. */
#include <limits.h>
#include <string.h>

#include "io/image_internal.h"

static inline void put_pixel(sparq_image *img, int x, int y, const uint8_t color[3]) {
  uint8_t *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
  if (img->channels == 1) p[0] = color[0];
  else memcpy(p, color, 3);
}

void sparq_image_fill_rect(sparq_image *img, int x, int y, int w, int h, const uint8_t color[3]) {
  if (!img || !img->pixels || !color) return;
  /* Clip in 64-bit so x + w cannot overflow. */
  long long x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
  long long x1 = (long long)x + w, y1 = (long long)y + h;
  if (x1 > img->width) x1 = img->width;
  if (y1 > img->height) y1 = img->height;
  for (long long yy = y0; yy < y1; yy++)
    for (long long xx = x0; xx < x1; xx++) put_pixel(img, (int)xx, (int)yy, color);
}

int sparq_text_width(const char *text, int scale) {
  size_t n = text ? strlen(text) : 0;
  if (n == 0 || scale < 1) return 0;
  /* The last character needs no gap after it. */
  double w = ((double)n * SPARQ_FONT_ADVANCE - (SPARQ_FONT_ADVANCE - SPARQ_FONT_WIDTH)) * scale;
  return w > INT_MAX ? INT_MAX : (int)w;
}

void sparq_image_draw_text(sparq_image *img, int x, int y, const char *text, int scale, const uint8_t color[3]) {
  if (!img || !img->pixels || !text || !color || scale < 1) return;
  long long pen = x;
  for (const unsigned char *s = (const unsigned char *)text; *s; s++, pen += (long long)SPARQ_FONT_ADVANCE * scale) {
    if (pen >= img->width) break;
    const char *const *rows = image_font_glyph(*s);
    for (int r = 0; r < SPARQ_FONT_HEIGHT; r++) {
      if (!rows[r]) continue;
      for (int c = 0; c < SPARQ_FONT_WIDTH; c++) {
        if (rows[r][c] != '#') continue;
        long long px = pen + (long long)c * scale, py = (long long)y + (long long)r * scale;
        if (px >= img->width || py >= img->height || px + scale <= 0 || py + scale <= 0) continue;
        sparq_image_fill_rect(img, (int)px, (int)py, scale, scale, color);
      }
    }
  }
}
