/* The FP8 optimizer's side of the training loop: its checkpoint tensors
 * under COAT's state names, and the per-tensor diagnostics of coat.jsonl. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/train.h"
#include "train/trainer_internal.h"

/* COAT's names: codes, then scale, expand (k), sqrtminmax (c), for m and v. */
static const char *const FP8_PREFIX[8] = {
    "optimizer.exp_avg.",    "optimizer.scale_exp_avg.",    "optimizer.expand_exp_avg.",
    "optimizer.sqrtminmax_exp_avg.",
    "optimizer.exp_avg_sq.", "optimizer.scale_exp_avg_sq.", "optimizer.expand_exp_avg_sq.",
    "optimizer.sqrtminmax_exp_avg_sq.",
};
#define NAME_MAX_LEN (40 + SPARQ_PARAM_NAME_MAX)

sparq_status trainer_fp8_ckpt_tensors(const sparq_adamw_fp8_state *st, const sparq_param_list *pl,
                                      sparq_ckpt_tensor **out, char **names, size_t *count) {
  *out = NULL, *names = NULL, *count = 0;
  if (st->cfg.identity || !st->m.codes || !st->v.codes)
    return sparq_fail(SPARQ_ERR_ARG, "train: the FP8 optimizer in identity mode has no checkpoint form");
  const size_t n = 8 * st->ntensors;
  sparq_ckpt_tensor *list = calloc(n ? n : 1, sizeof *list);
  char *buf = malloc((n ? n : 1) * NAME_MAX_LEN);
  if (!list || !buf) {
    free(list);
    free(buf);
    return sparq_fail(SPARQ_ERR_NOMEM, "train: out of memory listing the FP8 optimizer state");
  }
  for (size_t t = 0; t < st->ntensors; t++) {
    const sparq_adamw_fp8_tensor *q = &st->tensors[t];
    const sparq_param *p = &pl->items[q->param];
    for (int j = 0; j < 8; j++) {
      const sparq_fp8_moment *mom = j < 4 ? &st->m : &st->v;
      const sparq_fp8_format fmt = j < 4 ? st->cfg.m_format : st->cfg.v_format;
      sparq_ckpt_tensor *c = &list[8 * t + (size_t)j];
      char *name = buf + (8 * t + (size_t)j) * NAME_MAX_LEN;
      snprintf(name, NAME_MAX_LEN, "%s%s", FP8_PREFIX[j], p->name);
      c->name = name;
      if (j % 4 == 0) {
        c->dtype = sparq_fp8_dtype(fmt);
        c->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) c->shape[d] = p->shape[d];
        c->data = mom->codes + q->code_offset;
      } else {
        float *side = j % 4 == 1 ? mom->scale : j % 4 == 2 ? mom->k : mom->c;
        c->dtype = SPARQ_F32;
        c->ndim = 1;
        c->shape[0] = (int64_t)q->ngroups;
        c->data = side + q->group_offset;
      }
    }
  }
  *out = list, *names = buf, *count = n;
  return SPARQ_OK;
}

/* The name as a JSON string body (escapes quotes, backslashes, controls). */
static void json_escape(char *dst, size_t size, const char *src) {
  size_t k = 0;
  for (; *src && k + 7 < size; src++) {
    const unsigned char ch = (unsigned char)*src;
    if (ch == '"' || ch == '\\') dst[k++] = '\\', dst[k++] = (char)ch;
    else if (ch < 0x20) k += (size_t)snprintf(dst + k, size - k, "\\u%04x", ch);
    else dst[k++] = (char)ch;
  }
  dst[k] = '\0';
}

/* A line being built; appends past the end are dropped and flagged. */
typedef struct line_buf {
  char text[4096];
  size_t len;
  bool full;
} line_buf;

static void put(line_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(line_buf *b, const char *fmt, ...) {
  if (b->full) return;
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(b->text + b->len, sizeof b->text - b->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof b->text - b->len) b->full = true;
  else b->len += (size_t)n;
}

static void put_hist(line_buf *b, const char *key, const uint32_t *h) {
  put(b, ",\"%s\":[", key);
  for (int i = 0; i < SPARQ_FP8_K_BINS; i++) put(b, "%s%" PRIu32, i ? "," : "", h[i]);
  put(b, "]");
}

/* JSON has no NaN or inf: those are written as null. */
static void put_num(line_buf *b, const char *key, double x) {
  if (!isfinite(x)) put(b, ",\"%s\":null", key);
  else put(b, ",\"%s\":%.6g", key, x);
}

sparq_status trainer_fp8_log(const char *path, const sparq_adamw_fp8_state *st, const sparq_param_list *pl,
                             const sparq_adamw_config *cfg, int64_t step) {
  FILE *f = fopen(path, "ab");
  if (!f) return sparq_fail(SPARQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char name[6 * SPARQ_PARAM_NAME_MAX + 8];
  sparq_status s = SPARQ_OK;
  for (size_t t = 0; t < st->ntensors && !s; t++) {
    sparq_adamw_fp8_stats x;
    if ((s = sparq_adamw_fp8_tensor_stats(st, cfg, t, &x))) break;
    json_escape(name, sizeof name, pl->items[st->tensors[t].param].name);
    line_buf b = {.len = 0};
    put(&b, "{\"step\":%" PRId64 ",\"name\":\"%s\",\"k_bin_width\":%g", step, name, SPARQ_FP8_K_BIN_WIDTH);
    put_hist(&b, "k_hist_m", x.k_hist_m);
    put_hist(&b, "k_hist_v", x.k_hist_v);
    put_num(&b, "frac_k_lt1_m", x.frac_k_lt1_m);
    put_num(&b, "frac_k_lt1_v", x.frac_k_lt1_v);
    put_num(&b, "zero_frac_m", x.zero_frac_m);
    put_num(&b, "zero_frac_v", x.zero_frac_v);
    if (st->shadow) {
      put_num(&b, "relmse_m", x.relmse_m);
      put_num(&b, "relmse_v", x.relmse_v);
      put_num(&b, "relmse_update", x.relmse_update);
    }
    put(&b, "}\n");
    if (b.full) s = sparq_fail(SPARQ_ERR_IO, "%s: record for '%s' too long", path, name);
    else if (fputs(b.text, f) < 0) s = sparq_fail(SPARQ_ERR_IO, "%s: write failed", path);
  }
  if (fclose(f) != 0 && !s) s = sparq_fail(SPARQ_ERR_IO, "%s: write failed", path);
  return s;
}
