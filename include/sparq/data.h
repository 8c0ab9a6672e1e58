/* Built-in data sets, read from the Debian packages' own files:
 *
 *   Fashion-MNIST   /usr/share/datasets/fashion-mnist/  (package dataset-fashion-mnist)
 *   fortunes text   /usr/share/games/fortunes/          (package fortunes)
 *
 * Each loader takes a directory; NULL means the environment variable
 * (SPARQ_FASHION_MNIST_DIR, SPARQ_FORTUNES_DIR) when set and non-empty, else
 * the Debian path above. A missing data set fails with SPARQ_ERR_NOT_FOUND
 * and a message that names the file or directory and the package to install,
 * e.g. "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz: not found
 * (install the Debian package dataset-fashion-mnist)". */
#ifndef SPARQ_DATA_H
#define SPARQ_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------- Fashion-MNIST */

#define SPARQ_FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define SPARQ_FASHION_MNIST_CLASSES 10

typedef enum sparq_split {
  SPARQ_SPLIT_TRAIN = 0, /* Fashion-MNIST: 60000 images */
  SPARQ_SPLIT_TEST = 1,  /* Fashion-MNIST: 10000 images */
} sparq_split;

/* One split of Fashion-MNIST in memory. */
typedef struct sparq_fashion_mnist {
  /* n x 1 x side x side floats, row-major (NCHW with one channel), pixel
   * byte u scaled to u / 127.5 - 1, so 0 (black background) is -1 and 255
   * is exactly 1. With padding the 28 x 28 image sits at rows and columns
   * 2..29 of a 32 x 32 frame filled with -1. Owned; sparq_fashion_mnist_free. */
  float *images;
  int32_t *labels; /* n class indices in 0..9 (see sparq_fashion_mnist_class_name); owned */
  int64_t n;       /* number of images */
  int side;        /* 28, or 32 when padded */
} sparq_fashion_mnist;

/* Loads the train or test split from `dir` (see the top of this file):
 * {train,t10k}-images-idx3-ubyte.gz and {train,t10k}-labels-idx1-ubyte.gz,
 * read with sparq_idx_read (so plain IDX under those names works too).
 * Checks that the images are u8 with shape n x 28 x 28, the labels u8 with
 * shape n (same n) and every label is 0..9; anything else is
 * SPARQ_ERR_FORMAT naming the file. pad32: zero-pad (value -1) to 32 x 32,
 * the size patch-based models want. limit > 0 keeps only the first `limit`
 * samples (all of them if there are fewer); limit <= 0 keeps all.
 * On failure *out is zeroed. */
sparq_status sparq_fashion_mnist_load(const char *dir, sparq_split split, bool pad32, int64_t limit,
                                      sparq_fashion_mnist *out);

/* Frees the arrays and zeroes *ds; safe on a zeroed struct and twice. */
void sparq_fashion_mnist_free(sparq_fashion_mnist *ds);

/* The class name of a label: "T-shirt/top", "Trouser", "Pullover", "Dress",
 * "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"; "?" outside
 * 0..9. Static strings. */
const char *sparq_fashion_mnist_class_name(int label);

/* ------------------------------------------------------------ text bytes */

#define SPARQ_FORTUNES_DEFAULT_DIR "/usr/share/games/fortunes"
/* Largest corpus accepted, in bytes (the Debian one is about 2.6 MB). */
#define SPARQ_TEXT_MAX_BYTES ((size_t)1 << 30)

/* A byte-level text corpus with a fixed train/validation split. The tokens
 * of a byte-level language model are these bytes, 0..255. */
typedef struct sparq_text_corpus {
  uint8_t *bytes;       /* `size` bytes: every file, concatenated; owned */
  size_t size;
  const uint8_t *train; /* bytes[0 .. train_size): the first 90%, floor(size * 9 / 10) bytes */
  size_t train_size;
  const uint8_t *val;   /* bytes[train_size .. size): the last 10% */
  size_t val_size;
  int files;            /* number of files read */
} sparq_text_corpus;

/* Loads the fortunes corpus from `dir` (see the top of this file). Files
 * taken: the regular files directly in `dir` whose names do not end in
 * ".dat" (strfile's index files), found with lstat, so symbolic links (the
 * ".u8" aliases Debian ships) and directories are skipped. They are
 * concatenated, without separators, in strcmp order of their names, so the
 * result does not depend on the order the file system lists them. A
 * missing directory, or one with no such file or only empty ones, is
 * SPARQ_ERR_NOT_FOUND; more than SPARQ_TEXT_MAX_BYTES is SPARQ_ERR_NOMEM.
 * On failure *out is zeroed. */
sparq_status sparq_fortunes_load(const char *dir, sparq_text_corpus *out);

/* Loads any file (at most SPARQ_TEXT_MAX_BYTES, not empty) as a corpus with
 * the same 90/10 split. Missing file: SPARQ_ERR_NOT_FOUND naming it. On
 * failure *out is zeroed. */
sparq_status sparq_text_file_load(const char *path, sparq_text_corpus *out);

/* Frees the bytes and zeroes *corpus; safe on a zeroed struct and twice. */
void sparq_text_corpus_free(sparq_text_corpus *corpus);

/* Draws a language-model batch of `batch` random windows of T + 1
 * consecutive bytes of data[0 .. size): window b starts at a uniform offset
 * s_b in [0, size - T - 1], and
 *   x[b * T + t] = data[s_b + t],  y[b * T + t] = data[s_b + t + 1]
 * for t in [0, T): x is the input, y the next byte to predict. x and y are
 * batch x T int32 arrays owned by the caller. The offsets come from `rng`
 * (sparq_rng_below, one after the other), which advances, so the batches are
 * a pure function of the rng's seed, stream and position. Needs batch >= 1,
 * T >= 1 and size >= T + 1 (SPARQ_ERR_ARG otherwise). */
sparq_status sparq_text_batch(const uint8_t *data, size_t size, int64_t batch, int64_t T, sparq_rng *rng,
                              int32_t *x, int32_t *y);

/* ------------------------------------------------- labelled text (classes) */

/* Files smaller than this are left out of the labelled view: their 10%
 * held-out part (under 410 bytes) would not hold a window of the default
 * context, and a class must not come and go with --seq. In the Debian
 * corpus that drops "pratchett" (401 bytes) and "translate-me" (1787). */
#define SPARQ_TEXT_CLASS_MIN_BYTES 4096
/* Longest class name kept (file names are cut to this many bytes). */
#define SPARQ_TEXT_CLASS_NAME_MAX 63

/* One class of a labelled corpus: one file, split like the corpus. */
typedef struct sparq_text_class {
  char name[SPARQ_TEXT_CLASS_NAME_MAX + 1]; /* the file's name */
  const uint8_t *train; /* the file's first floor(size * 9 / 10) bytes */
  size_t train_size;
  const uint8_t *val;   /* the rest */
  size_t val_size;
} sparq_text_class;

/* The fortunes corpus seen as classes: each file of at least
 * SPARQ_TEXT_CLASS_MIN_BYTES bytes is a class, in the corpus's strcmp order
 * of names (class i = the i-th such file), with the corpus's 90/10 split
 * applied to each file on its own. */
typedef struct sparq_text_classes {
  sparq_text_corpus corpus;  /* every file, as sparq_fortunes_load reads it; the classes point into it */
  sparq_text_class *classes; /* `count` classes; owned */
  int count;
  int skipped;               /* files left out for being small */
} sparq_text_classes;

/* Loads the labelled fortunes corpus from `dir` (NULL as for
 * sparq_fortunes_load, whose rules pick the files). A class name holding a
 * ',' (the separator of the names in checkpoint metadata) or longer than
 * SPARQ_TEXT_CLASS_NAME_MAX is SPARQ_ERR_FORMAT, as is a corpus with no
 * file large enough. On failure *out is zeroed. */
sparq_status sparq_fortunes_classes_load(const char *dir, sparq_text_classes *out);
/* Frees everything and zeroes *tc; safe on a zeroed struct and twice. */
void sparq_text_classes_free(sparq_text_classes *tc);

/* sparq_text_batch inside classes: each window lies within one class's
 * train (val false) or held-out (val true) bytes, and labels[b] is its
 * class. The window is uniform over all windows of all classes, so a class
 * is drawn in proportion to its size: one draw
 * u = sparq_rng_below(sum_k (size_k - T)) per row, mapped to class k and
 * offset u - sum_{j<k} (size_j - T). Classes with fewer than T + 1 bytes in
 * that split are never drawn; SPARQ_ERR_ARG if none has enough. */
sparq_status sparq_text_class_batch(const sparq_text_class *classes, int count, bool val, int64_t batch, int64_t T,
                                    sparq_rng *rng, int32_t *x, int32_t *y, int32_t *labels);

#ifdef __cplusplus
}
#endif
#endif
