/* Reading whole files in tests. */
#ifndef SPARQ_TESTS_TEST_FILE_UTIL_H
#define SPARQ_TESTS_TEST_FILE_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bytes of `path` plus a terminating NUL (free with free()); *size (if
 * not NULL) gets the byte count. NULL, with a line on stderr, if the file
 * cannot be read. */
static inline char *test_slurp(const char *path, size_t *size) {
  if (size) *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  if (size) *size = (size_t)n;
  return buf;
}

#endif
