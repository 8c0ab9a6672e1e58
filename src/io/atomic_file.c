/* Atomic file replacement: write a temporary file next to the destination,
 * fsync it, rename it over the destination, fsync the directory so the
 * rename itself survives a crash. Readers see the old file or the new one,
 * never a half-written one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io_internal.h"

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* Directory part of `path` ("." when there is none), malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return dup_str(".");
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = '\0';
  return d;
}

static void release(sparq_atomic_file *f) {
  free(f->path);
  free(f->tmp_path);
  f->path = f->tmp_path = NULL;
  f->fd = -1;
}

void sparq_atomic_abort(sparq_atomic_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  if (f->tmp_path) unlink(f->tmp_path);
  release(f);
}

sparq_status sparq_atomic_open(sparq_atomic_file *f, const char *path) {
  static unsigned counter; /* distinguishes temp files of concurrent writers in one process */
  f->fd = -1;
  f->path = f->tmp_path = NULL;
  if (!path || !*path) return sparq_fail(SPARQ_ERR_ARG, "sparq_atomic_open: empty path");
  size_t n = strlen(path);
  if (path[n - 1] == '/') return sparq_fail(SPARQ_ERR_ARG, "%s: path names a directory", path);
  f->path = dup_str(path);
  f->tmp_path = malloc(n + 64);
  if (!f->path || !f->tmp_path) {
    release(f);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory", path);
  }
  const char *base = strrchr(path, '/');
  size_t dir_len = base ? (size_t)(base + 1 - path) : 0;
  base = base ? base + 1 : path;
  /* O_EXCL with a fresh name (not mkstemp, which forces mode 0600) so the
   * final file gets the usual 0666 & ~umask. A hidden name keeps globs from
   * picking up a half-written file. */
  for (int attempt = 0; attempt < 100; attempt++) {
    unsigned c = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    snprintf(f->tmp_path, n + 64, "%.*s.%s.tmp-%ld-%u", (int)dir_len, path, base, (long)getpid(), c);
    f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd >= 0) return SPARQ_OK;
    if (errno != EEXIST) break;
  }
  int e = errno;
  release(f);
  return sparq_fail(e == ENOENT ? SPARQ_ERR_NOT_FOUND : SPARQ_ERR_IO, "%s: cannot create a temporary file next to it: %s",
                    path, strerror(e));
}

sparq_status sparq_atomic_write(sparq_atomic_file *f, const void *data, size_t bytes) {
  if (f->fd < 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_atomic_write: file is not open");
  const unsigned char *p = data;
  while (bytes) {
    size_t chunk = bytes > ((size_t)1 << 30) ? (size_t)1 << 30 : bytes;
    ssize_t w = write(f->fd, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = w < 0 ? errno : EIO;
      sparq_status st = sparq_fail(SPARQ_ERR_IO, "%s: write failed: %s", f->path, strerror(e));
      sparq_atomic_abort(f);
      return st;
    }
    p += w;
    bytes -= (size_t)w;
  }
  return SPARQ_OK;
}

sparq_status sparq_atomic_commit(sparq_atomic_file *f) {
  if (f->fd < 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_atomic_commit: file is not open");
  const char *step = "fsync";
  if (fsync(f->fd)) goto fail;
  step = "close";
  int fd = f->fd;
  f->fd = -1;
  if (close(fd)) goto fail;
  step = "rename";
  if (rename(f->tmp_path, f->path)) goto fail;
  /* The data is in place; a failed directory fsync only weakens durability
   * after a crash, and the new file cannot be un-renamed sensibly, so it is
   * reported but the temporary name no longer exists to remove. */
  char *dir = dir_of(f->path);
  int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  int e = dfd < 0 ? errno : (fsync(dfd) ? errno : 0);
  if (dfd >= 0) close(dfd);
  free(dir);
  sparq_status st = SPARQ_OK;
  if (e && e != EINVAL) /* EINVAL: the file system cannot fsync directories */
    st = sparq_fail(SPARQ_ERR_IO, "%s: written, but fsync of its directory failed: %s", f->path, strerror(e));
  release(f);
  return st;
fail:;
  sparq_status s = sparq_fail(SPARQ_ERR_IO, "%s: %s failed: %s", f->path, step, strerror(errno));
  sparq_atomic_abort(f);
  return s;
}

sparq_status sparq_write_file_atomic(const char *path, const void *data, size_t bytes) {
  sparq_atomic_file f;
  sparq_status st = sparq_atomic_open(&f, path);
  if (!st) st = sparq_atomic_write(&f, data, bytes);
  if (!st) st = sparq_atomic_commit(&f);
  return st;
}
