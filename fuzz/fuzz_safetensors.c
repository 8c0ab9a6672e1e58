/* Fuzzes the safetensors header parser through the memory entry point.
 * Invariants checked beyond "no crash, no sanitizer report": a failure
 * leaves a message naming the input; on success every view lies inside
 * the input, reads back through the float helper, and is found by name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/sparq.h"

#define NAME "fuzz.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sparq_safetensors *st;
  if (sparq_safetensors_open_memory(data, size, NAME, &st) != SPARQ_OK) {
    if (strncmp(sparq_last_error(), NAME ": ", sizeof NAME + 1)) __builtin_trap();
    return 0;
  }
  for (size_t i = 0; i < st->count; i++) {
    const sparq_tensor *t = &st->tensors[i];
    size_t n, nbytes;
    if (!sparq_tensor_numel(t, &n) || !sparq_tensor_nbytes(t, &nbytes)) __builtin_trap();
    const uint8_t *p = t->data;
    if (p < data || nbytes > size || p - data > (ptrdiff_t)(size - nbytes)) __builtin_trap();
    if (sparq_safetensors_find(st, st->names[i]) != t) __builtin_trap();
    if (n) {
      float *out = malloc(n * sizeof *out); /* n <= nbytes <= size: bounded by the input */
      if (sparq_tensor_to_f32(t, out) != SPARQ_OK) __builtin_trap();
      free(out);
    }
  }
  for (size_t i = 0; i < st->metadata_count; i++)
    if (!sparq_safetensors_metadata(st, st->metadata_keys[i])) __builtin_trap();
  sparq_safetensors_close(st);
  return 0;
}
