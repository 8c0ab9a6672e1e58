/* The fortunes text corpus (Debian package fortunes) as one byte array with
 * a 90/10 train/validation split. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/fortunes_internal.h"
#include "sparq/data.h"

#define PACKAGE "fortunes"

void sparq_text_corpus_free(sparq_text_corpus *corpus) {
  if (!corpus) return;
  sparq_free(corpus->bytes);
  memset(corpus, 0, sizeof *corpus);
}

typedef struct name_list {
  char **names;
  size_t count, capacity;
} name_list;

static void names_free(name_list *l) {
  for (size_t i = 0; i < l->count; i++) free(l->names[i]);
  free(l->names);
  memset(l, 0, sizeof *l);
}

static bool names_push(name_list *l, const char *name) {
  if (l->count == l->capacity) {
    size_t cap = l->capacity ? 2 * l->capacity : 64;
    char **grown = realloc(l->names, cap * sizeof *grown);
    if (!grown) return false;
    l->names = grown;
    l->capacity = cap;
  }
  size_t n = strlen(name) + 1;
  char *copy = malloc(n);
  if (!copy) return false;
  memcpy(copy, name, n);
  l->names[l->count++] = copy;
  return true;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !memcmp(s + n - m, suffix, m);
}

/* The corpus files of `dir` (see sparq_fortunes_load), sorted, and the sum of
 * their sizes. */
static sparq_status list_files(const char *dir, int dfd, name_list *out, size_t *total) {
  /* A duplicate, because closedir() closes the descriptor it was given. */
  int list_fd = dup(dfd);
  DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
  if (!d) {
    sparq_status st = sparq_fail(SPARQ_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    if (list_fd >= 0) close(list_fd);
    return st;
  }
  *total = 0;
  sparq_status st = SPARQ_OK;
  for (struct dirent *e; !st && (e = readdir(d));) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    if (ends_with(e->d_name, ".dat")) continue;
    struct stat sb;
    /* lstat semantics: a symlink is skipped even when it points to a file */
    if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
      st = sparq_fail(SPARQ_ERR_IO, "%s/%s: %s", dir, e->d_name, strerror(errno));
      break;
    }
    if (!S_ISREG(sb.st_mode)) continue;
    if ((uint64_t)sb.st_size > SPARQ_TEXT_MAX_BYTES - *total) {
      st = sparq_fail(SPARQ_ERR_NOMEM, "%s: the text files hold more than the limit of %zu bytes", dir,
                      SPARQ_TEXT_MAX_BYTES);
      break;
    }
    *total += (size_t)sb.st_size;
    if (!names_push(out, e->d_name)) st = sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory listing files", dir);
  }
  closedir(d);
  if (!st && out->count) qsort(out->names, out->count, sizeof *out->names, by_name);
  return st;
}

/* Reads exactly `size` bytes of dir/name into dst; a file that grew or
 * shrank since it was listed is an error rather than a silent misalignment. */
static sparq_status read_exact(const char *dir, int dfd, const char *name, uint8_t *dst, size_t size) {
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return sparq_fail(SPARQ_ERR_IO, "%s/%s: cannot open: %s", dir, name, strerror(errno));
  size_t got = 0;
  sparq_status st = SPARQ_OK;
  while (got < size) {
    ssize_t r = read(fd, dst + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      st = sparq_fail(SPARQ_ERR_IO, "%s/%s: read failed: %s", dir, name, strerror(errno));
      break;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  uint8_t extra;
  if (!st && (got != size || read(fd, &extra, 1) != 0))
    st = sparq_fail(SPARQ_ERR_IO, "%s/%s: changed size while being read", dir, name);
  close(fd);
  return st;
}

void fortunes_files_free(fortunes_file *files, size_t count) {
  for (size_t i = 0; files && i < count; i++) free(files[i].name);
  free(files);
}

/* Hands the names over to files [count] with their sizes as read. */
static sparq_status take_files(name_list *names, const size_t *sizes, fortunes_file **files, size_t *count) {
  *files = calloc(names->count ? names->count : 1, sizeof **files);
  if (!*files) return sparq_fail(SPARQ_ERR_NOMEM, "out of memory listing the fortunes files");
  for (size_t i = 0; i < names->count; i++) {
    (*files)[i] = (fortunes_file){names->names[i], sizes[i]};
    names->names[i] = NULL;
  }
  *count = names->count;
  return SPARQ_OK;
}

sparq_status sparq_fortunes_load(const char *dir, sparq_text_corpus *out) {
  return fortunes_load_files(dir, out, NULL, NULL);
}

sparq_status fortunes_load_files(const char *dir, sparq_text_corpus *out, fortunes_file **files, size_t *count) {
  if (files) *files = NULL, *count = 0;
  memset(out, 0, sizeof *out);
  if (!dir) {
    const char *env = getenv("SPARQ_FORTUNES_DIR");
    dir = env && *env ? env : SPARQ_FORTUNES_DEFAULT_DIR;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: not found (install the Debian package " PACKAGE ")", dir);
    return sparq_fail(SPARQ_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
  }
  name_list names = {0};
  size_t total = 0;
  sparq_status st = list_files(dir, dfd, &names, &total);
  if (!st && total == 0)
    st = sparq_fail(SPARQ_ERR_NOT_FOUND, "%s: no fortune text files (install the Debian package " PACKAGE ")", dir);
  size_t *sizes = NULL;
  if (!st) {
    out->bytes = sparq_alloc(total, "fortunes corpus");
    sizes = calloc(names.count, sizeof *sizes);
    if (!out->bytes || !sizes) st = sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory reading the corpus", dir);
  }
  size_t offset = 0;
  for (size_t i = 0; !st && i < names.count; i++) {
    struct stat sb;
    if (fstatat(dfd, names.names[i], &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
        (size_t)sb.st_size > total - offset) {
      st = sparq_fail(SPARQ_ERR_IO, "%s/%s: changed while being read", dir, names.names[i]);
      break;
    }
    st = read_exact(dir, dfd, names.names[i], out->bytes + offset, (size_t)sb.st_size);
    sizes[i] = (size_t)sb.st_size;
    offset += (size_t)sb.st_size;
  }
  if (!st && offset != total) st = sparq_fail(SPARQ_ERR_IO, "%s: files changed while being read", dir);
  close(dfd);
  if (!st) {
    out->size = total;
    /* floor(total * 9 / 10) without the overflow of total * 9 */
    out->train_size = total / 10 * 9 + total % 10 * 9 / 10;
    out->val_size = total - out->train_size;
    out->train = out->bytes;
    out->val = out->bytes + out->train_size;
    out->files = (int)names.count;
    if (files) st = take_files(&names, sizes, files, count);
  }
  free(sizes);
  names_free(&names);
  if (st) sparq_text_corpus_free(out);
  return st;
}
