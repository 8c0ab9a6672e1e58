/* PNG output through libpng, written atomically.
 *
 * libpng reports errors by calling an error function that must not return;
 * the default one prints and longjmps (or aborts without a jmpbuf). We install
 * our own that saves the message and longjmps back to png_encode(), so a
 * libpng failure becomes a sparq_status like any other. Nothing that changes
 * after setjmp() in png_encode is read after the longjmp, which keeps this
 * well defined without volatile locals. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "io/image_internal.h"
#include "sparq/base.h"

typedef struct png_error_ctx {
  char message[256];
} png_error_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
  png_error_ctx *ctx = png_get_error_ptr(png);
  snprintf(ctx->message, sizeof ctx->message, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

/* Warnings (e.g. about ancillary chunks) do not affect the pixels we write. */
static void on_png_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static void on_png_write(png_structp png, png_bytep data, size_t length) {
  image_sink *sink = png_get_io_ptr(png);
  image_sink_put(sink, data, length);
  /* Stop at the first failed write; the sink holds the message. */
  if (sink->status != SPARQ_OK) png_error(png, "write failed");
}

/* Flushing is the sink's job at commit. */
static void on_png_flush(png_structp png) { (void)png; }

/* ctx belongs to the caller: C leaves locals of the function that called
 * setjmp() indeterminate after the longjmp if they changed in between. */
static sparq_status png_encode(image_sink *sink, const char *path, const uint8_t *pixels, int height, int width,
                               int channels, png_error_ctx *ctx) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error, on_png_warning);
  if (!png) return sparq_fail(SPARQ_ERR_NOMEM, "%s: cannot create the libpng writer", path);
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: cannot create the libpng info struct", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    if (sink->status != SPARQ_OK) return sink->status; /* the caller's commit reports it */
    return sparq_fail(SPARQ_ERR_IO, "%s: libpng: %s", path, ctx->message);
  }
  png_set_write_fn(png, sink, on_png_write, on_png_flush);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = (size_t)width * (size_t)channels;
  for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * stride);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return SPARQ_OK;
}

sparq_status sparq_png_write(const char *path, const uint8_t *pixels, int height, int width, int channels) {
  size_t bytes = 0;
  sparq_status st = image_check_shape(path ? path : "sparq_png_write", height, width, channels, &bytes);
  if (st) return st;
  if (!pixels) return sparq_fail(SPARQ_ERR_ARG, "%s: sparq_png_write: NULL pixels", path ? path : "(null)");
  image_sink sink;
  st = image_sink_open(&sink, path);
  if (st) return st;
  png_error_ctx ctx = {{0}};
  st = png_encode(&sink, path, pixels, height, width, channels, &ctx);
  if (st && sink.status == SPARQ_OK) {
    image_sink_abort(&sink);
    return st;
  }
  return image_sink_commit(&sink);
}

sparq_status sparq_png_write_f32(const char *path, const float *pixels, int height, int width, int channels,
                                 float lo, float hi) {
  size_t bytes = 0;
  sparq_status st = image_check_shape(path ? path : "sparq_png_write_f32", height, width, channels, &bytes);
  if (st) return st;
  uint8_t *buf = sparq_alloc(bytes, "sparq_png_write_f32");
  if (!buf) return SPARQ_ERR_NOMEM;
  st = sparq_image_u8_from_f32(buf, pixels, height, width, channels, lo, hi, false);
  if (!st) st = sparq_png_write(path, buf, height, width, channels);
  sparq_free(buf);
  return st;
}
