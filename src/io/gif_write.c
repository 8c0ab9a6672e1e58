/* Animated GIF output through giflib 5, written atomically.
 *
 * One global palette serves every frame: 256 grays for gray frames (exact),
 * or a fixed 6 x 7 x 6 colour cube for RGB frames. A fixed cube is cruder
 * than a per-video median cut but is deterministic, needs one pass, and
 * gives the same index for the same colour in every frame, so a static
 * background does not flicker. Green gets the seventh level because the
 * eye resolves it best. */
#include <gif_lib.h>
#include <stdio.h>
#include <string.h>

#include "io/image_internal.h"
#include "sparq/base.h"

enum { CUBE_R = 6, CUBE_G = 7, CUBE_B = 6 };

/* Nearest of `levels` evenly spaced levels over 0..255: round(v * (levels-1) / 255). */
static inline int cube_level(uint8_t v, int levels) { return (2 * (levels - 1) * v + 255) / 510; }
/* The byte value of level i: round(i * 255 / (levels-1)), halves up. */
static inline uint8_t cube_value(int i, int levels) {
  return (uint8_t)((2 * 255 * i + (levels - 1)) / (2 * (levels - 1)));
}

int sparq_gif_rgb_index(uint8_t r, uint8_t g, uint8_t b) {
  return (cube_level(r, CUBE_R) * CUBE_G + cube_level(g, CUBE_G)) * CUBE_B + cube_level(b, CUBE_B);
}

void sparq_gif_rgb_color(int index, uint8_t rgb[3]) {
  if (index < 0 || index >= CUBE_R * CUBE_G * CUBE_B) {
    rgb[0] = rgb[1] = rgb[2] = 0;
    return;
  }
  rgb[0] = cube_value(index / (CUBE_G * CUBE_B), CUBE_R);
  rgb[1] = cube_value(index / CUBE_B % CUBE_G, CUBE_G);
  rgb[2] = cube_value(index % CUBE_B, CUBE_B);
}

static ColorMapObject *make_palette(int channels) {
  GifColorType colors[256];
  memset(colors, 0, sizeof colors); /* the 4 entries past the cube stay black */
  for (int i = 0; i < 256; i++) {
    if (channels == 1) {
      colors[i].Red = colors[i].Green = colors[i].Blue = (GifByteType)i;
    } else if (i < CUBE_R * CUBE_G * CUBE_B) {
      uint8_t rgb[3];
      sparq_gif_rgb_color(i, rgb);
      colors[i].Red = rgb[0], colors[i].Green = rgb[1], colors[i].Blue = rgb[2];
    }
  }
  return GifMakeMapObject(256, colors);
}

/* Reports a short write after the first failure so giflib stops too. */
static int write_to_sink(GifFileType *gif, const GifByteType *buf, int len) {
  image_sink *sink = gif->UserData;
  image_sink_put(sink, buf, (size_t)len);
  return sink->status == SPARQ_OK ? len : 0;
}

static sparq_status gif_error(const char *path, const char *step, int code) {
  const char *msg = GifErrorString(code);
  return sparq_fail(SPARQ_ERR_IO, "%s: giflib: %s: %s", path, step, msg ? msg : "unknown error");
}

/* NETSCAPE2.0 application extension, loop count 0 = forever. */
static int put_loop_extension(GifFileType *gif) {
  static const GifByteType params[3] = {1, 0, 0}; /* sub-block id 1, count 0 (little endian) */
  if (EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) == GIF_ERROR) return GIF_ERROR;
  if (EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0") == GIF_ERROR) return GIF_ERROR;
  if (EGifPutExtensionBlock(gif, 3, params) == GIF_ERROR) return GIF_ERROR;
  return EGifPutExtensionTrailer(gif);
}

/* Writes the frames; the caller opens and closes the GifFileType. */
static sparq_status gif_encode(GifFileType *gif, const char *path, const uint8_t *frames, int nframes, int height,
                               int width, int channels, int delay_cs, bool loop, GifPixelType *row) {
  ColorMapObject *palette = make_palette(channels);
  if (!palette) return sparq_fail(SPARQ_ERR_NOMEM, "%s: cannot allocate the GIF palette", path);
  EGifSetGifVersion(gif, true);
  int rc = EGifPutScreenDesc(gif, width, height, 8, 0, palette);
  GifFreeMapObject(palette); /* giflib keeps its own copy */
  if (rc == GIF_ERROR) return gif_error(path, "screen descriptor", gif->Error);
  if (loop && put_loop_extension(gif) == GIF_ERROR) return gif_error(path, "loop extension", gif->Error);

  GraphicsControlBlock gcb = {
      .DisposalMode = DISPOSE_DO_NOT, /* every frame covers the whole screen */
      .UserInputFlag = false,
      .DelayTime = delay_cs,
      .TransparentColor = NO_TRANSPARENT_COLOR,
  };
  GifByteType gcb_bytes[4];
  size_t gcb_len = EGifGCBToExtension(&gcb, gcb_bytes);
  const size_t frame_bytes = (size_t)height * (size_t)width * (size_t)channels;
  for (int f = 0; f < nframes; f++) {
    if (EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, (int)gcb_len, gcb_bytes) == GIF_ERROR)
      return gif_error(path, "frame delay", gif->Error);
    if (EGifPutImageDesc(gif, 0, 0, width, height, false, NULL) == GIF_ERROR)
      return gif_error(path, "image descriptor", gif->Error);
    const uint8_t *frame = frames + (size_t)f * frame_bytes;
    for (int y = 0; y < height; y++) {
      const uint8_t *src = frame + (size_t)y * (size_t)width * (size_t)channels;
      for (int x = 0; x < width; x++)
        row[x] = channels == 1 ? src[x] : (GifPixelType)sparq_gif_rgb_index(src[3 * x], src[3 * x + 1], src[3 * x + 2]);
      if (EGifPutLine(gif, row, width) == GIF_ERROR) return gif_error(path, "pixels", gif->Error);
    }
  }
  return SPARQ_OK;
}

sparq_status sparq_gif_write(const char *path, const uint8_t *frames, int nframes, int height, int width,
                             int channels, int delay_cs, bool loop) {
  const char *who = path ? path : "sparq_gif_write";
  size_t frame_bytes = 0, total = 0;
  sparq_status st = image_check_shape(who, height, width, channels, &frame_bytes);
  if (st) return st;
  if (nframes < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: %d frames (need at least 1)", who, nframes);
  if (!sparq_size_mul(frame_bytes, (size_t)nframes, &total))
    return sparq_fail(SPARQ_ERR_ARG, "%s: %d frames of %zu bytes overflow", who, nframes, frame_bytes);
  if (delay_cs < 0 || delay_cs > 65535)
    return sparq_fail(SPARQ_ERR_ARG, "%s: frame delay %d cs is outside 0..65535", who, delay_cs);
  if (!frames) return sparq_fail(SPARQ_ERR_ARG, "%s: sparq_gif_write: NULL frames", who);

  GifPixelType *row = sparq_alloc((size_t)width, "sparq_gif_write");
  if (!row) return SPARQ_ERR_NOMEM;
  image_sink *sink = sparq_alloc(sizeof *sink, "sparq_gif_write");
  if (!sink) {
    sparq_free(row);
    return SPARQ_ERR_NOMEM;
  }
  st = image_sink_open(sink, path);
  if (st) {
    sparq_free(row);
    sparq_free(sink);
    return st;
  }
  int err = 0;
  GifFileType *gif = EGifOpen(sink, write_to_sink, &err);
  if (!gif) {
    st = gif_error(path, "open", err);
  } else {
    st = gif_encode(gif, path, frames, nframes, height, width, channels, delay_cs, loop, row);
    /* Closing writes the trailer and frees gif, even when it fails. */
    if (EGifCloseFile(gif, &err) == GIF_ERROR && !st) st = gif_error(path, "close", err);
  }
  /* After a failed write giflib reports a generic error; commit then
   * removes the file and restores the sink's own message (with errno). */
  if (st && sink->status == SPARQ_OK) image_sink_abort(sink);
  else st = image_sink_commit(sink);
  sparq_free(row);
  sparq_free(sink);
  return st;
}
