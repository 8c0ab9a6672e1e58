/* Fuzzes the .npy reader (header dict parser and size checks) from memory.
 * On success the tensor's byte size must be exactly what followed the
 * header, which the reader copied; on failure the message names the input. */
#include <stdint.h>
#include <string.h>

#include "sparq/sparq.h"

#define NAME "fuzz.npy"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sparq_tensor t;
  if (sparq_npy_read_memory(data, size, NAME, &t) != SPARQ_OK) {
    if (strncmp(sparq_last_error(), NAME ": ", sizeof NAME + 1) || t.data) __builtin_trap();
    return 0;
  }
  size_t nbytes;
  if (!sparq_tensor_nbytes(&t, &nbytes) || nbytes > size || !t.data) __builtin_trap();
  if (nbytes && memcmp(t.data, data + size - nbytes, nbytes)) __builtin_trap();
  volatile double sink = 0;
  size_t n;
  sparq_tensor_numel(&t, &n);
  for (size_t i = 0; i < n; i++) sink += sparq_tensor_get(&t, i);
  (void)sink;
  sparq_tensor_free(&t);
  return 0;
}
