/* Fuzzes the IDX reader from memory, plain and gzip. Raw inputs reach the
 * gzip path when they start with 1f 8b (the seeds include .gz files); in
 * addition every non-gzip input is gzip-compressed here and parsed again,
 * so the header and size logic is also fuzzed behind a valid gzip stream,
 * and both parses must agree exactly (status and bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "sparq/sparq.h"

#define NAME "fuzz.idx"

static sparq_status parse(const uint8_t *data, size_t size, sparq_tensor *t) {
  sparq_status st = sparq_idx_read_memory(data, size, NAME, t);
  if (st != SPARQ_OK && (strncmp(sparq_last_error(), NAME ": ", sizeof NAME + 1) || t->data)) __builtin_trap();
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sparq_tensor plain;
  sparq_status st = parse(data, size, &plain);
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    sparq_tensor_free(&plain);
    return 0;
  }
  uLong cap = compressBound((uLong)size) + 64;
  uint8_t *gz = malloc(cap);
  z_stream z;
  memset(&z, 0, sizeof z);
  if (!gz || deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  z.next_in = (Bytef *)(uintptr_t)data;
  z.avail_in = (uInt)size;
  z.next_out = gz;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
  size_t gz_size = cap - z.avail_out;
  deflateEnd(&z);

  sparq_tensor packed;
  sparq_status st2 = parse(gz, gz_size, &packed);
  if (st2 != st) __builtin_trap();
  if (st == SPARQ_OK) {
    size_t nbytes;
    if (!sparq_tensor_nbytes(&plain, &nbytes) || packed.dtype != plain.dtype || packed.ndim != plain.ndim ||
        memcmp(packed.shape, plain.shape, sizeof plain.shape) || memcmp(packed.data, plain.data, nbytes))
      __builtin_trap();
  }
  sparq_tensor_free(&plain);
  sparq_tensor_free(&packed);
  free(gz);
  return 0;
}
