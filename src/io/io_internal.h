/* Helpers shared by the readers and writers in src/io (not public API). */
#ifndef SPARQ_IO_INTERNAL_H
#define SPARQ_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/io.h"

/* A whole file mapped read-only. An empty file gives data == NULL, size 0
 * (mmap refuses zero lengths). */
typedef struct io_map {
  const unsigned char *data;
  size_t size;
  bool mapped; /* munmap needed */
} io_map;

/* Maps `path`; on failure records "PATH: why" and returns the status. */
sparq_status io_map_open(const char *path, io_map *m);
void io_map_close(io_map *m);

/* Unaligned little/big-endian loads: file bytes have no alignment. */
static inline uint64_t io_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static inline uint32_t io_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t io_le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t io_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF). */
bool io_utf8_valid(const unsigned char *s, size_t n);

/* Largest number of bytes a dtype can need for the npy/safetensors writers'
 * dtype checks: true when `dtype` is one of the sparq_dtype values. */
static inline bool io_dtype_valid(sparq_dtype dtype) {
  return (unsigned)dtype < (unsigned)SPARQ_DTYPE_COUNT;
}

/* Checks ndim and shape of a tensor given to a writer and returns its byte
 * size; fails with SPARQ_ERR_ARG naming `who` (the destination path). */
sparq_status io_check_tensor(const char *who, const char *what, const sparq_tensor *t, size_t *nbytes);

#endif
