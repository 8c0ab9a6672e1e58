/* Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) from the Debian package
 * dataset-fashion-mnist: IDX files in, float images in [-1, 1] out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sparq/data.h"
#include "sparq/io.h"

#define PACKAGE "dataset-fashion-mnist"
#define SIDE 28

static const char *const class_names[SPARQ_FASHION_MNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

const char *sparq_fashion_mnist_class_name(int label) {
  return label >= 0 && label < SPARQ_FASHION_MNIST_CLASSES ? class_names[label] : "?";
}

void sparq_fashion_mnist_free(sparq_fashion_mnist *ds) {
  if (!ds) return;
  sparq_free(ds->images);
  sparq_free(ds->labels);
  memset(ds, 0, sizeof *ds);
}

/* Reads one IDX file, turning "no such file" into the message that says
 * which package provides it. */
static sparq_status read_idx(const char *path, sparq_tensor *t) {
  struct stat sb;
  if (stat(path, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
    memset(t, 0, sizeof *t);
    return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: not found (install the Debian package " PACKAGE ")", path);
  }
  return sparq_idx_read(path, t);
}

static sparq_status check_shapes(const char *images_path, const sparq_tensor *im, const char *labels_path,
                                 const sparq_tensor *lb) {
  if (im->dtype != SPARQ_U8 || im->ndim != 3 || im->shape[1] != SIDE || im->shape[2] != SIDE) {
    char shape[128] = "";
    for (int d = 0; d < im->ndim && d < SPARQ_MAX_DIMS; d++) {
      size_t len = strlen(shape);
      snprintf(shape + len, sizeof shape - len, "%s%lld", d ? " x " : "", (long long)im->shape[d]);
    }
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: expected u8 images of shape n x 28 x 28, got %s %s", images_path,
                      sparq_dtype_name(im->dtype), im->ndim ? shape : "scalar");
  }
  if (lb->dtype != SPARQ_U8 || lb->ndim != 1)
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: expected a 1-D u8 array of labels, got %s with %d dimensions",
                      labels_path, sparq_dtype_name(lb->dtype), lb->ndim);
  if (im->shape[0] != lb->shape[0])
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: %lld labels, but %s has %lld images", labels_path,
                      (long long)lb->shape[0], images_path, (long long)im->shape[0]);
  const uint8_t *l = lb->data;
  for (int64_t i = 0; i < lb->shape[0]; i++)
    if (l[i] >= SPARQ_FASHION_MNIST_CLASSES)
      return sparq_fail(SPARQ_ERR_FORMAT, "%s: label %d at index %lld is outside 0..9", labels_path, l[i],
                        (long long)i);
  return SPARQ_OK;
}

/* Scales and (optionally) pads n images into out->images. */
static void convert(const uint8_t *src, int64_t n, int side, float *dst) {
  float lut[256]; /* u / 127.5 - 1: 0 -> -1 and 255 -> 1 exactly */
  for (int u = 0; u < 256; u++) lut[u] = (float)u / 127.5f - 1.0f;
  const int pad = (side - SIDE) / 2;
  const size_t frame = (size_t)side * (size_t)side;
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; i++) {
    float *d = dst + (size_t)i * frame;
    const uint8_t *s = src + (size_t)i * SIDE * SIDE;
    if (pad)
      for (size_t k = 0; k < frame; k++) d[k] = -1.0f;
    for (int y = 0; y < SIDE; y++)
      for (int x = 0; x < SIDE; x++) d[(size_t)(y + pad) * (size_t)side + (size_t)(x + pad)] = lut[s[y * SIDE + x]];
  }
}

sparq_status sparq_fashion_mnist_load(const char *dir, sparq_split split, bool pad32, int64_t limit,
                                      sparq_fashion_mnist *out) {
  memset(out, 0, sizeof *out);
  if (split != SPARQ_SPLIT_TRAIN && split != SPARQ_SPLIT_TEST)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_fashion_mnist_load: split %d is neither train nor test", (int)split);
  if (!dir) {
    const char *env = getenv("SPARQ_FASHION_MNIST_DIR");
    dir = env && *env ? env : SPARQ_FASHION_MNIST_DEFAULT_DIR;
  }
  const char *prefix = split == SPARQ_SPLIT_TRAIN ? "train" : "t10k";
  char images_path[4096], labels_path[4096];
  if (snprintf(images_path, sizeof images_path, "%s/%s-images-idx3-ubyte.gz", dir, prefix) >= (int)sizeof images_path ||
      snprintf(labels_path, sizeof labels_path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix) >= (int)sizeof labels_path)
    return sparq_fail(SPARQ_ERR_ARG, "%s: directory path too long", dir);

  sparq_tensor im = {0}, lb = {0};
  sparq_status st = read_idx(images_path, &im);
  if (!st) st = read_idx(labels_path, &lb);
  if (!st) st = check_shapes(images_path, &im, labels_path, &lb);
  if (st) goto done;

  int64_t n = im.shape[0];
  if (limit > 0 && limit < n) n = limit;
  const int side = pad32 ? 32 : SIDE;
  if (n > 0) {
    out->images = sparq_calloc((size_t)n * (size_t)side * (size_t)side, sizeof(float), "Fashion-MNIST images");
    out->labels = sparq_calloc((size_t)n, sizeof(int32_t), "Fashion-MNIST labels");
    if (!out->images || !out->labels) {
      st = SPARQ_ERR_NOMEM;
      goto done;
    }
    convert(im.data, n, side, out->images);
    const uint8_t *l = lb.data;
    for (int64_t i = 0; i < n; i++) out->labels[i] = l[i];
  }
  out->n = n;
  out->side = side;
done:
  sparq_tensor_free(&im);
  sparq_tensor_free(&lb);
  if (st) sparq_fashion_mnist_free(out);
  return st;
}
