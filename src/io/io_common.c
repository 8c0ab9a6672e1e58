/* File mapping, UTF-8 validation and writer argument checks shared by the
 * tensor file formats. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"

sparq_status io_map_open(const char *path, io_map *m) {
  memset(m, 0, sizeof *m);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sparq_fail(errno == ENOENT ? SPARQ_ERR_NOT_FOUND : SPARQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st)) {
    int e = errno;
    close(fd);
    return sparq_fail(SPARQ_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return sparq_fail(SPARQ_ERR_IO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > SIZE_MAX) {
    close(fd);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: file too large to map", path);
  }
  m->size = (size_t)st.st_size;
  if (m->size == 0) {
    close(fd);
    return SPARQ_OK;
  }
  void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd); /* the mapping keeps the file alive */
  if (p == MAP_FAILED) {
    m->size = 0;
    return sparq_fail(SPARQ_ERR_IO, "%s: cannot map: %s", path, strerror(e));
  }
  m->data = p;
  m->mapped = true;
  return SPARQ_OK;
}

void io_map_close(io_map *m) {
  if (m->mapped) munmap((void *)m->data, m->size);
  memset(m, 0, sizeof *m);
}

bool io_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return false;
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

sparq_status io_check_tensor(const char *who, const char *what, const sparq_tensor *t, size_t *nbytes) {
  if (!io_dtype_valid(t->dtype)) return sparq_fail(SPARQ_ERR_ARG, "%s: %s has an invalid dtype %d", who, what, (int)t->dtype);
  if (t->ndim < 0 || t->ndim > SPARQ_MAX_DIMS)
    return sparq_fail(SPARQ_ERR_ARG, "%s: %s has %d dimensions (0..%d allowed)", who, what, t->ndim, SPARQ_MAX_DIMS);
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 0) return sparq_fail(SPARQ_ERR_ARG, "%s: %s has a negative dimension %lld", who, what, (long long)t->shape[i]);
  if (!sparq_tensor_nbytes(t, nbytes)) return sparq_fail(SPARQ_ERR_ARG, "%s: %s byte size overflows", who, what);
  if (*nbytes && !t->data) return sparq_fail(SPARQ_ERR_ARG, "%s: %s has NULL data", who, what);
  return SPARQ_OK;
}
