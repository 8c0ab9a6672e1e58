/* Fuzzes the checkpoint reader on top of the safetensors parser: a small
 * parameter list with an FP32 state (EMA weights) and the FP8 optimizer's
 * typed tensors (codes F8_E4M3 / F8_E5M2 in the parameter's shape,
 * per-group FP32 scale, k and c, COAT's state names), as `train lm --optim
 * adamw-fp8` resumes. Invariants beyond "no crash, no sanitizer report": a
 * failure names the input, and a success copied the codes byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/sparq.h"

#define NAME "fuzz.safetensors"
enum { ROWS = 3, COLS = 50, N = ROWS * COLS, GROUPS = (N + 127) / 128 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sparq_safetensors *st;
  if (sparq_safetensors_open_memory(data, size, NAME, &st) != SPARQ_OK) return 0;
  sparq_param_list pl = {0};
  const int64_t shape[2] = {ROWS, COLS}, bias_shape[1] = {COLS};
  if (sparq_params_add(&pl, "w", 2, shape) || sparq_params_add(&pl, "b", 1, bias_shape) ||
      sparq_params_allocate(&pl))
    __builtin_trap();
  float *m = calloc(pl.numel, sizeof *m);
  const sparq_ckpt_state states[1] = {{"ema.", m, pl.numel}};
  static const char *const names[8] = {
      "optimizer.exp_avg.w",          "optimizer.scale_exp_avg.w",    "optimizer.expand_exp_avg.w",
      "optimizer.sqrtminmax_exp_avg.w", "optimizer.exp_avg_sq.w",      "optimizer.scale_exp_avg_sq.w",
      "optimizer.expand_exp_avg_sq.w", "optimizer.sqrtminmax_exp_avg_sq.w"};
  uint8_t codes[2][N];
  float side[6][GROUPS];
  sparq_ckpt_tensor typed[8];
  for (int j = 0; j < 8; j++) {
    sparq_ckpt_tensor *t = &typed[j];
    memset(t, 0, sizeof *t);
    t->name = names[j];
    if (j % 4 == 0) {
      t->dtype = j ? SPARQ_F8_E5M2 : SPARQ_F8_E4M3;
      t->ndim = 2, t->shape[0] = ROWS, t->shape[1] = COLS;
      t->data = codes[j / 4];
    } else {
      t->dtype = SPARQ_F32;
      t->ndim = 1, t->shape[0] = GROUPS;
      t->data = side[(j / 4) * 3 + j % 4 - 1];
    }
  }
  const sparq_status s = sparq_checkpoint_read(st, &pl, states, 1, typed, 8);
  if (s != SPARQ_OK && strstr(sparq_last_error(), NAME) == NULL) __builtin_trap();
  for (int j = 0; s == SPARQ_OK && j < 2; j++) {
    const sparq_tensor *t = sparq_safetensors_find(st, names[4 * j]);
    if (!t || memcmp(t->data, codes[j], N) != 0) __builtin_trap();
  }
  free(m);
  sparq_params_free(&pl);
  sparq_safetensors_close(st);
  return 0;
}
