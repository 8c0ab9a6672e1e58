/* Images out: PNG and GIF writers, labelled image grids and a built-in
 * bitmap font.
 *
 * Every image here is 8-bit and interleaved: `height` rows of `width` pixels
 * of `channels` bytes (1 = gray, 3 = RGB), row-major with no padding, so
 * pixel (y, x) channel c is pixels[(y * width + x) * channels + c]. Models
 * produce floats; sparq_image_u8_from_f32() converts them (and CHW layouts)
 * to this form.
 *
 * Files are written atomically: the bytes go to a temporary file in the same
 * directory, which is fsync'ed and renamed over `path`, so a reader never
 * sees a half-written image and a failure leaves no temporary file behind.
 * The directory must exist; a missing one is an error, not created. */
#ifndef SPARQ_IMAGE_H
#define SPARQ_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest height or width any function here accepts, in pixels. GIF's own
 * limit is 65535; this one keeps every byte count far from overflow. */
#define SPARQ_IMAGE_MAX_SIDE 32768

/* An owned 8-bit image in the layout described above. */
typedef struct sparq_image {
  uint8_t *pixels; /* height * width * channels bytes; owned, free with sparq_image_free */
  int height, width;
  int channels; /* 1 (gray) or 3 (RGB) */
} sparq_image;

/* Allocates a zero-filled (black) image. On failure *img is zeroed. */
sparq_status sparq_image_alloc(sparq_image *img, int height, int width, int channels);
/* Frees img->pixels and zeroes *img; safe on a zeroed or already freed image. */
void sparq_image_free(sparq_image *img);

/* Converts `height * width * channels` floats to bytes: lo maps to 0, hi to
 * 255, linearly, rounded to nearest and clamped (NaN gives 0). Use lo = -1,
 * hi = 1 for model outputs in [-1, 1] (then u / 127.5 - 1 maps back to u
 * exactly) and lo = 0, hi = 1 for [0, 1]. `src_chw` says src is planar
 * (channels x height x width, PyTorch's layout); dst is always interleaved. */
sparq_status sparq_image_u8_from_f32(uint8_t *dst, const float *src, int height, int width, int channels,
                                     float lo, float hi, bool src_chw);

/* ------------------------------------------------------------------- PNG */

/* Writes an 8-bit gray (channels 1) or RGB (channels 3) PNG, atomically. */
sparq_status sparq_png_write(const char *path, const uint8_t *pixels, int height, int width, int channels);

/* Same from floats in [lo, hi] (interleaved), through sparq_image_u8_from_f32. */
sparq_status sparq_png_write_f32(const char *path, const float *pixels, int height, int width, int channels,
                                 float lo, float hi);

/* ------------------------------------------------------------------- GIF */

/* Writes an animated GIF89a of `nframes` (>= 1) frames, atomically.
 * frames: nframes x height x width x channels bytes, frame after frame.
 * Gray frames use a 256-level gray palette, so they are stored exactly. RGB
 * frames are mapped to the nearest colour of a fixed 6 x 7 x 6 cube (red and
 * blue levels 0, 51, ..., 255; green 0, 42.5, ..., 255, rounded): at most
 * 25 levels off per channel, deterministic, no dithering.
 * delay_cs: time each frame is shown, in centiseconds (0..65535; browsers
 * treat values below 2 as 10). loop: true adds the NETSCAPE2.0 extension
 * with count 0 (repeat forever); false plays the frames once. */
sparq_status sparq_gif_write(const char *path, const uint8_t *frames, int nframes, int height, int width,
                             int channels, int delay_cs, bool loop);

/* The palette index sparq_gif_write uses for an RGB colour (0..251), and the
 * colour stored at an index (for checks and for callers that quantize first). */
int sparq_gif_rgb_index(uint8_t r, uint8_t g, uint8_t b);
void sparq_gif_rgb_color(int index, uint8_t rgb[3]);

/* ------------------------------------------------------------------ text */

/* The built-in font: printable ASCII (32..126) in 5 x 9 cells, caps and digits
 * 7 pixels tall with two rows below the baseline for descenders. Other bytes
 * draw as '?'. Each character advances 6 pixels (times `scale`). */
#define SPARQ_FONT_WIDTH 5
#define SPARQ_FONT_HEIGHT 9
#define SPARQ_FONT_ADVANCE 6

/* Width in pixels of `text` drawn at `scale` (0 for ""). */
int sparq_text_width(const char *text, int scale);

/* Draws `text` with its top-left corner at (x, y), each font pixel a
 * scale x scale square, in `color` (RGB; gray images use color[0]). Only the
 * glyph pixels are written (the background shows through), and anything
 * outside the image is clipped. scale >= 1. */
void sparq_image_draw_text(sparq_image *img, int x, int y, const char *text, int scale, const uint8_t color[3]);

/* Fills the rectangle [x, x + w) x [y, y + h), clipped to the image. */
void sparq_image_fill_rect(sparq_image *img, int x, int y, int w, int h, const uint8_t color[3]);

/* ------------------------------------------------------------------ grid */

typedef struct sparq_grid_options {
  int cols;               /* tiles per row; 0: ceil(sqrt(n)), as square as possible */
  int scale;              /* nearest-neighbour upscale of every tile, >= 1 */
  int border;             /* background pixels around the grid and between cells, >= 0 */
  int text_scale;         /* font pixel size of the labels, >= 1 */
  uint8_t background[3];  /* border and label strip colour (gray images use [0]) */
  uint8_t text_color[3];
} sparq_grid_options;

/* Defaults: cols 0, scale 1, border 2, text_scale 1, background dark gray
 * (48), text white. */
sparq_grid_options sparq_grid_options_default(void);

/* Tiles n images into one, left to right then top to bottom.
 * tiles: n x tile_h x tile_w x channels bytes. labels: NULL for no labels, or
 * n strings (an entry may be NULL or "") drawn centred in a strip under each
 * tile; a label too wide for its tile is cut at the last whole character that
 * fits. Layout: with s = scale, b = border, the cell of tile i (row r =
 * i / cols, column c = i % cols) starts at x = b + c * (tile_w * s + b),
 * y = b + r * (tile_h * s + L + b), where L = 0 without labels and
 * L = SPARQ_FONT_HEIGHT * text_scale + 2 with them (one background row above
 * and below the text). Cells past n stay background. `out` is allocated
 * (free with sparq_image_free) with the tiles' channel count. opt may be NULL
 * for the defaults. */
sparq_status sparq_image_grid(const uint8_t *tiles, int n, int tile_h, int tile_w, int channels,
                              const char *const *labels, const sparq_grid_options *opt, sparq_image *out);

#ifdef __cplusplus
}
#endif
#endif
