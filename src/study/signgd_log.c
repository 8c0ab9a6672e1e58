/* A run's trajectory as JSON Lines (the log) and as a gnuplot table. */
#include <stdio.h>
#include <string.h>

#include "study/signgd_internal.h"

static sparq_status check_trace(const char *fn, const char *path, const sparq_signgd_trace *t) {
  if (!path || !t || (t->count > 0 && !t->points))
    return sparq_fail(SPARQ_ERR_ARG, "%s: path or trace is NULL", fn);
  return SPARQ_OK;
}

static void json_array(sg_text *out, const char *key, const double *x, int64_t count) {
  sg_text_printf(out, ",\"%s\":[", key);
  for (int64_t j = 0; j < count; j++) {
    if (j) sg_text_printf(out, ",");
    sg_text_num(out, x[j]);
  }
  sg_text_printf(out, "]");
}

sparq_status sparq_signgd_write_log(const char *path, const sparq_signgd_trace *t) {
  sparq_status st = check_trace("sparq_signgd_write_log", path, t);
  if (st != SPARQ_OK) return st;
  const int64_t mk = t->config.m_k;
  sg_text out = {0};
  for (int64_t r = 0; r < t->count; r++) {
    const sparq_signgd_point *p = &t->points[r];
    sg_text_printf(&out, "{\"step\":%lld", (long long)p->step);
#define SG_JSON(name)                                                                                                \
  sg_text_printf(&out, ",\"" #name "\":");                                                                           \
  sg_text_num(&out, p->name);
    SG_FIELDS(SG_JSON)
#undef SG_JSON
    json_array(&out, "q_signal_neuron", t->q_signal_neuron + r * mk, mk);
    json_array(&out, "k_signal_neuron", t->k_signal_neuron + r * mk, mk);
    sg_text_printf(&out, "}\n");
  }
  return sg_text_commit(&out, path);
}

sparq_status sparq_signgd_write_dat(const char *path, const sparq_signgd_trace *t) {
  sparq_status st = check_trace("sparq_signgd_write_dat", path, t);
  if (st != SPARQ_OK) return st;
  sg_text out = {0};
  sg_text_printf(&out, "# %s snr %g seed %llu\n# step", sparq_signgd_optim_name(t->config.optim), t->config.snr,
                 (unsigned long long)t->config.seed);
#define SG_HEAD(name) sg_text_printf(&out, " " #name);
  SG_FIELDS(SG_HEAD)
#undef SG_HEAD
  sg_text_printf(&out, "\n");
  for (int64_t r = 0; r < t->count; r++) {
    const sparq_signgd_point *p = &t->points[r];
    sg_text_printf(&out, "%lld", (long long)p->step);
#define SG_ROW(name) sg_text_printf(&out, " %.9g", p->name);
    SG_FIELDS(SG_ROW)
#undef SG_ROW
    sg_text_printf(&out, "\n");
  }
  return sg_text_commit(&out, path);
}

int sg_dat_column(const char *name) {
  int column = 2;
#define SG_COL(field)                                                                                                \
  if (!strcmp(name, #field)) return column;                                                                          \
  column++;
  SG_FIELDS(SG_COL)
#undef SG_COL
  return strcmp(name, "step") ? 0 : 1;
}
