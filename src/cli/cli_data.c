/* sparq data: look at the built-in data sets (a labelled Fashion-MNIST grid,
 * the size and a sample of the fortunes corpus). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/data.h"
#include "sparq/image.h"

/* Upscale of each 28 x 28 tile: at 3x a tile is 84 pixels wide, room for
 * the longest class name ("T-shirt/top", 65 pixels) in the 5 x 9 font. */
#define GRID_SCALE 3


static int fashion_grid(const char *split, int64_t n, bool pad32, const char *out_png) {
  if (!split) split = "train";
  if (strcmp(split, "train") && strcmp(split, "test")) return cli_fail("data: unknown split '%s'", split);
  if (n < 1 || n > 1024) return cli_fail("data: --n %lld is outside 1..1024", (long long)n);
  sparq_fashion_mnist ds;
  if (sparq_fashion_mnist_load(NULL, !strcmp(split, "train") ? SPARQ_SPLIT_TRAIN : SPARQ_SPLIT_TEST, pad32, n, &ds))
    return cli_fail_last_error();

  const int side = ds.side, count = (int)ds.n;
  const char *labels[1024];
  for (int i = 0; i < count; i++) labels[i] = sparq_fashion_mnist_class_name(ds.labels[i]);
  int rc = CLI_FAIL;
  sparq_image grid = {0};
  uint8_t *tiles = sparq_alloc((size_t)count * (size_t)side * (size_t)side, "Fashion-MNIST tiles");
  bool converted = tiles != NULL;
  for (int i = 0; converted && i < count; i++) {
    const size_t frame = (size_t)side * (size_t)side;
    converted = !sparq_image_u8_from_f32(tiles + i * frame, ds.images + i * frame, side, side, 1, -1.0f, 1.0f, false);
  }
  if (converted) {
    sparq_grid_options opt = sparq_grid_options_default();
    opt.scale = GRID_SCALE;
    if (!sparq_image_grid(tiles, count, side, side, 1, labels, &opt, &grid) &&
        !sparq_png_write(out_png, grid.pixels, grid.height, grid.width, 1)) {
      int cols = 0;
      while (cols * cols < count) cols++;
      const int rows = (count + cols - 1) / cols;
      printf("wrote %s: the first %d Fashion-MNIST %s image%s (%dx%d%s) with labels, "
             "%d column%s x %d row%s, %dx%d pixels\n",
             out_png, count, split, count == 1 ? "" : "s", side, side, pad32 ? " padded" : "", cols,
             cols == 1 ? "" : "s", rows, rows == 1 ? "" : "s", grid.width, grid.height);
      rc = CLI_OK;
    }
  }
  if (rc != CLI_OK) cli_fail_last_error();
  sparq_image_free(&grid);
  sparq_free(tiles);
  sparq_fashion_mnist_free(&ds);
  return rc;
}

int cli_data_grid(const char *split, int64_t n, const char *out_png) { return fashion_grid(split, n, false, out_png); }

/* Prints up to ~320 bytes of `data` as quoted lines, ending at a newline;
 * mid_line says data starts inside a line (the validation split does), which
 * is then skipped. Bytes a terminal would not show plainly print as '?'. */
static void print_sample(const uint8_t *data, size_t size, bool mid_line) {
  size_t begin = 0;
  if (mid_line) {
    while (begin < size && begin < 200 && data[begin] != '\n') begin++;
    begin = begin < size && data[begin] == '\n' ? begin + 1 : 0;
  }
  size_t end = begin + 320 < size ? begin + 320 : size;
  size_t cut = end;
  while (cut > begin && data[cut - 1] != '\n') cut--;
  if (cut > begin) end = cut;
  fputs("  | ", stdout);
  for (size_t i = begin; i < end; i++) {
    uint8_t c = data[i];
    if (c == '\n') {
      if (i + 1 < end) fputs("\n  | ", stdout);
    } else {
      putchar(c == '\t' ? ' ' : (c >= 32 && c < 127) ? c : '?');
    }
  }
  putchar('\n');
}

static int text_info(const char *split) {
  sparq_text_corpus corpus;
  if (sparq_fortunes_load(NULL, &corpus)) return cli_fail_last_error();
  bool val = split && !strcmp(split, "val");
  printf("fortunes corpus: %zu bytes from %d file%s\n", corpus.size, corpus.files, corpus.files == 1 ? "" : "s");
  printf("train %zu bytes (first 90%%), val %zu bytes (last 10%%)\n", corpus.train_size, corpus.val_size);
  printf("sample of %s:\n", val ? "val" : "train");
  print_sample(val ? corpus.val : corpus.train, val ? corpus.val_size : corpus.train_size, val);
  sparq_text_corpus_free(&corpus);
  return CLI_OK;
}

int cli_data(int argc, char **argv) {
  if (argc < 2) return cli_usage_error("data", "needs a data set: fashion-mnist or text");
  const char *set = argv[1];
  if (!strcmp(set, "fashion-mnist")) {
    const char *grid = NULL, *split = "train";
    int64_t n = 64;
    bool pad32 = false;
    const cli_opt opts[] = {
        {"grid", CLI_STRING, &grid, 0, 0, NULL},
        {"n", CLI_INT, &n, 1, 1024, NULL},
        {"split", CLI_CHOICE, &split, 0, 0, "train|test"},
        {"pad32", CLI_BOOL, &pad32, 0, 0, NULL},
    };
    int rc = cli_parse("data", argc, argv, 2, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
    if (rc != CLI_OK) return rc;
    if (!grid) return cli_usage_error("data", "%s needs --grid OUT.png", set);
    return fashion_grid(split, n, pad32, grid);
  }
  if (!strcmp(set, "text")) {
    const char *split = "train";
    const cli_opt opts[] = {{"split", CLI_CHOICE, &split, 0, 0, "train|val"}};
    int rc = cli_parse("data", argc, argv, 2, opts, 1, NULL, 0, NULL);
    if (rc != CLI_OK) return rc;
    return text_info(split);
  }
  return cli_usage_error("data", "unknown data set '%s' (expected fashion-mnist or text)", set);
}
