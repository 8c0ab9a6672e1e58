/* Format detection by content, for `sparq inspect` and other callers that
 * take "a tensor file" without saying which kind. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "io/io_internal.h"

static bool idx_type_known(unsigned char t) {
  return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E;
}

sparq_file_format sparq_detect_format(const void *head, size_t size) {
  const unsigned char *b = head;
  if (!b) return SPARQ_FORMAT_UNKNOWN;
  if (size >= 6 && !memcmp(b, "\x93NUMPY", 6)) return SPARQ_FORMAT_NPY;
  if (size >= 2 && b[0] == 0x1f && b[1] == 0x8b) return SPARQ_FORMAT_IDX_GZ;
  bool idx = size >= 4 && b[0] == 0 && b[1] == 0 && idx_type_known(b[2]) && b[3] > 0;
  bool st = size >= 9 && b[8] == '{';
  /* Both can match (an IDX file whose first data byte is '{'): a plausible
   * header length decides, because real safetensors headers are small. */
  if (st && idx) return io_le64(b) <= SPARQ_SAFETENSORS_MAX_HEADER ? SPARQ_FORMAT_SAFETENSORS : SPARQ_FORMAT_IDX;
  if (st) return SPARQ_FORMAT_SAFETENSORS;
  if (idx) return SPARQ_FORMAT_IDX;
  return SPARQ_FORMAT_UNKNOWN;
}

sparq_status sparq_detect_file_format(const char *path, sparq_file_format *out) {
  if (!path || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_detect_file_format: NULL argument");
  *out = SPARQ_FORMAT_UNKNOWN;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sparq_fail(errno == ENOENT ? SPARQ_ERR_NOT_FOUND : SPARQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char head[16];
  size_t got = 0;
  while (got < sizeof head) {
    ssize_t r = read(fd, head + got, sizeof head - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return sparq_fail(SPARQ_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  close(fd);
  *out = sparq_detect_format(head, got);
  if (*out == SPARQ_FORMAT_UNKNOWN) {
    if (got == 0) return sparq_fail(SPARQ_ERR_FORMAT, "%s: file is empty", path);
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: not a safetensors, npy or IDX file (unrecognised first bytes)", path);
  }
  return SPARQ_OK;
}
