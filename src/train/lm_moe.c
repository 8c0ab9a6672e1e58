/* MoE language-model training: ReMoE's regularised objective or TopK's
 * aux loss on the GPT's MoE blocks, the adaptive lambda once per optimizer
 * step, and the spec's section 7 logs (lm.h). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparq/base.h"
#include "sparq/io.h"
#include "train/lm_moe.h"

#define MOE_MAX_LAYERS 64

typedef struct sparq_lm_moe {
  sparq_lm_moe_config cfg;
  char *log_path;
  sparq_moe_lambda ctl;
  bool relu;
  int64_t L, E, step;
  /* this step's sums over its micro-batches */
  int64_t micros;
  double lm, reg, aux, sparsity[MOE_MAX_LAYERS];
  int64_t counts[MOE_MAX_LAYERS][SPARQ_MOE_MAX_EXPERTS], rows;
  int64_t hist[SPARQ_MOE_MAX_EXPERTS + 1]; /* (block, token) pairs by active experts */
  /* the run's byte table */
  double byte_active[256];
  int64_t byte_freq[256];
  /* checkpoint metadata: the GPT's, then ours */
  sparq_metadata_entry meta[32];
  size_t meta_count;
  char text[5][32];
  char line[1 << 18]; /* one detail record: up to 64 blocks x 255 experts */
} sparq_lm_moe;

enum { TXT_LAMBDA, TXT_LAMBDA0, TXT_ALPHA, TXT_AUX };

static void add_meta(sparq_lm_moe *m, const char *key, const char *value) {
  m->meta[m->meta_count++] = (sparq_metadata_entry){key, value};
}

void lm_moe_free(sparq_lm_task *t) {
  if (!t->moe) return;
  sparq_free(t->moe->log_path);
  sparq_free(t->moe);
  t->moe = NULL;
}

/* Keeps the detail log's records of steps <= keep (all gone when keep is 0). */
static sparq_status trim_log(const char *path, int64_t keep) {
  if (keep == 0) return sparq_write_file_atomic(path, "", 0);
  FILE *f = fopen(path, "rb");
  if (!f) return sparq_write_file_atomic(path, "", 0); /* a run resumed without its log starts one */
  const size_t line_cap = 1 << 18; /* a whole detail record (lm_moe_log_extra) */
  char *line = sparq_alloc(line_cap, "MoE log");
  size_t cap = 1 << 16, len = 0;
  char *out = sparq_alloc(cap, "MoE log");
  if (!out || !line) {
    sparq_free(line);
    sparq_free(out);
    fclose(f);
    return SPARQ_ERR_NOMEM;
  }
  while (fgets(line, (int)line_cap, f)) {
    long long step = -1;
    if (sscanf(line, "{\"step\":%lld", &step) != 1 || step > keep) continue;
    size_t n = strlen(line);
    if (len + n > cap) {
      char *bigger = sparq_alloc(cap * 2 + n, "MoE log");
      if (!bigger) {
        sparq_free(out);
        sparq_free(line);
        fclose(f);
        return SPARQ_ERR_NOMEM;
      }
      memcpy(bigger, out, len);
      sparq_free(out);
      out = bigger;
      cap = cap * 2 + n;
    }
    memcpy(out + len, line, n);
    len += n;
  }
  fclose(f);
  sparq_free(line);
  sparq_status s = sparq_write_file_atomic(path, out, len);
  sparq_free(out);
  return s;
}

sparq_status sparq_lm_task_set_moe(sparq_lm_task *t, const sparq_lm_moe_config *cfg) {
  static const char who[] = "train lm";
  if (!t || !t->gpt || !cfg) return sparq_fail(SPARQ_ERR_ARG, "sparq_lm_task_set_moe: NULL argument");
  const sparq_gpt_config *c = sparq_gpt_get_config(t->gpt);
  if (c->moe_router == SPARQ_MOE_NONE) return sparq_fail(SPARQ_ERR_ARG, "%s: the GPT has no MoE blocks", who);
  if (t->n_classes > 0) return sparq_fail(SPARQ_ERR_ARG, "%s: MoE training of a conditional task", who);
  if (cfg->l1 != SPARQ_MOE_L1_LB && cfg->l1 != SPARQ_MOE_L1_PLAIN)
    return sparq_fail(SPARQ_ERR_ARG, "%s: unknown L1 kind %d", who, (int)cfg->l1);
  if (!(cfg->aux >= 0.0f) || !isfinite(cfg->aux))
    return sparq_fail(SPARQ_ERR_ARG, "%s: --aux %g must be finite and >= 0", who, cfg->aux);
  if (cfg->first_step < 0) return sparq_fail(SPARQ_ERR_ARG, "%s: negative first step", who);
  sparq_lm_moe *m = sparq_calloc(1, sizeof *m, "MoE training state");
  if (!m) return SPARQ_ERR_NOMEM;
  sparq_status s = sparq_moe_lambda_init(&m->ctl, cfg->lambda0, cfg->alpha, c->moe_experts, c->moe_topk);
  if (!s && cfg->lambda_start > 0.0f) {
    if (!isfinite(cfg->lambda_start)) s = sparq_fail(SPARQ_ERR_ARG, "%s: the starting lambda is not finite", who);
    m->ctl.lambda = cfg->lambda_start;
  }
  if (!s && cfg->log_path) {
    m->log_path = sparq_alloc(strlen(cfg->log_path) + 1, "MoE log path");
    if (!m->log_path) s = SPARQ_ERR_NOMEM;
    else strcpy(m->log_path, cfg->log_path);
    if (!s) s = trim_log(m->log_path, cfg->first_step);
  }
  if (s) {
    sparq_free(m->log_path);
    sparq_free(m);
    return s;
  }
  lm_moe_free(t);
  m->cfg = *cfg;
  m->cfg.log_path = m->log_path;
  m->relu = c->moe_router == SPARQ_MOE_RELU;
  m->L = sparq_gpt_moe_count(t->gpt);
  m->E = c->moe_experts;
  m->step = cfg->first_step;
  const sparq_metadata_entry *gm = NULL;
  size_t gn = 0;
  sparq_gpt_checkpoint_info(t->gpt, NULL, NULL, &gm, &gn);
  for (size_t i = 0; i < gn && m->meta_count < 24; i++) m->meta[m->meta_count++] = gm[i];
  snprintf(m->text[TXT_LAMBDA], 32, "%.9g", m->ctl.lambda);
  snprintf(m->text[TXT_LAMBDA0], 32, "%.9g", cfg->lambda0);
  snprintf(m->text[TXT_ALPHA], 32, "%.9g", cfg->alpha);
  snprintf(m->text[TXT_AUX], 32, "%.9g", cfg->aux);
  add_meta(m, "moe_l1", cfg->l1 == SPARQ_MOE_L1_PLAIN ? "plain" : "lb");
  add_meta(m, "moe_lambda", m->text[TXT_LAMBDA]);
  add_meta(m, "moe_lambda0", m->text[TXT_LAMBDA0]);
  add_meta(m, "moe_alpha", m->text[TXT_ALPHA]);
  add_meta(m, "moe_aux", m->text[TXT_AUX]);
  t->moe = m;
  return SPARQ_OK;
}

void lm_moe_meta(sparq_lm_task *t, const sparq_metadata_entry **meta, size_t *count) {
  *meta = t->moe->meta;
  *count = t->moe->meta_count;
}

float sparq_lm_task_moe_lambda(const sparq_lm_task *t) { return t && t->moe ? t->moe->ctl.lambda : 0.0f; }

sparq_status sparq_lm_task_moe_bytes(const sparq_lm_task *t, double mean_active[256], int64_t freq[256]) {
  if (!t || !t->moe || !mean_active || !freq)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_lm_task_moe_bytes: no MoE training task");
  for (int b = 0; b < 256; b++) {
    freq[b] = t->moe->byte_freq[b];
    mean_active[b] = freq[b] ? t->moe->byte_active[b] / (double)freq[b] : 0.0;
  }
  return SPARQ_OK;
}

/* Adds the last training forward's routing to the step's sums and the byte table. */
static sparq_status collect(sparq_lm_task *t, sparq_lm_moe *m, double *reg, double *aux) {
  const int64_t rows = t->batch * t->seq;
  *reg = *aux = 0.0;
  for (int64_t j = 0; j < m->L; j++) {
    sparq_moe_stats st;
    sparq_status s = sparq_gpt_moe_stats(t->gpt, j, NULL, &st);
    if (s) return s;
    if (st.rows != rows) return sparq_fail(SPARQ_ERR_ARG, "train lm: MoE block %" PRId64 " saw other rows", j);
    *reg += m->cfg.l1 == SPARQ_MOE_L1_PLAIN ? st.reg_plain : st.reg_lb;
    *aux += st.aux;
    m->sparsity[j] += st.sparsity;
    for (int64_t e = 0; e < m->E; e++) m->counts[j][e] += st.counts[e];
    for (int64_t r = 0; r < rows; r++) {
      m->hist[st.active[r]]++;
      m->byte_active[t->x[r] & 255] += (double)st.active[r] / (double)m->L;
    }
  }
  for (int64_t r = 0; r < rows; r++) m->byte_freq[t->x[r] & 255]++;
  *reg /= (double)m->L;
  m->rows += rows;
  return SPARQ_OK;
}

sparq_status lm_moe_train_micro(void *self, sparq_rng *rng, float dloss, float *loss) {
  sparq_lm_task *t = self;
  sparq_lm_moe *m = t->moe;
  sparq_gpt_set_moe_objective(t->gpt, m->relu ? m->ctl.lambda : 0.0f, m->cfg.l1, m->relu ? 0.0f : m->cfg.aux);
  float lm = 0.0f;
  double reg = 0.0, aux = 0.0;
  sparq_status s = sparq_text_batch(t->train, t->train_size, t->batch, t->seq, rng, t->x, t->y);
  if (!s) s = sparq_gpt_forward(t->gpt, t->x, t->y, t->batch, t->seq, &lm);
  if (!s) s = collect(t, m, &reg, &aux);
  if (!s) s = sparq_gpt_backward(t->gpt, dloss);
  if (s) return s;
  const double total = (double)lm + (m->relu ? (double)m->ctl.lambda * reg : (double)m->cfg.aux * aux);
  m->lm += lm;
  m->reg += reg;
  m->aux += aux;
  m->micros++;
  *loss = (float)total;
  return SPARQ_OK;
}

/* The smallest v with at least q of the n pairs at or below it. */
static int percentile(const int64_t *hist, int64_t E, int64_t n, double q) {
  int64_t cum = 0;
  for (int64_t v = 0; v <= E; v++)
    if ((cum += hist[v]) >= (int64_t)ceil(q * (double)n)) return (int)v;
  return (int)E;
}

/* Appends to buf (size cap) with snprintf semantics; keeps *len at most cap - 1. */
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
  if (*len + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n > 0) *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

void lm_moe_log_extra(void *self, char *buf, size_t size) {
  sparq_lm_task *t = self;
  sparq_lm_moe *m = t->moe;
  const double mi = m->micros > 0 ? (double)m->micros : 1.0;
  const int64_t L = m->L, E = m->E;
  double S = 0.0, Sl[MOE_MAX_LAYERS], ratio[MOE_MAX_LAYERS], worst_ratio = 0.0;
  int starved[MOE_MAX_LAYERS];
  for (int64_t j = 0; j < L; j++) {
    Sl[j] = m->sparsity[j] / mi;
    S += Sl[j] / (double)L;
    int64_t total = 0, mx = 0;
    for (int64_t e = 0; e < E; e++) total += m->counts[j][e], mx = m->counts[j][e] > mx ? m->counts[j][e] : mx;
    const double mean = (double)total / (double)E;
    ratio[j] = mean > 0 ? (double)mx / mean : 0.0;
    worst_ratio = ratio[j] > worst_ratio ? ratio[j] : worst_ratio;
    starved[j] = 0;
    for (int64_t e = 0; e < E; e++) starved[j] += (double)m->counts[j][e] < mean / 64.0;
  }
  int64_t pairs = 0;
  double active_sum = 0.0;
  for (int64_t v = 0; v <= E; v++) pairs += m->hist[v], active_sum += (double)v * (double)m->hist[v];
  const double active_mean = pairs ? active_sum / (double)pairs : 0.0;
  const double zero = pairs ? (double)m->hist[0] / (double)pairs : 0.0;
  const float lambda_used = m->relu ? m->ctl.lambda : 0.0f;
  const double lm = m->lm / mi, reg = m->reg / mi, aux = m->aux / mi * m->cfg.aux;
  size_t len = 0;
  if (size) buf[0] = 0;
  put(buf, size, &len,
      ",\"loss_lm\":%.6f,\"loss_reg\":%.6g,\"lambda\":%.6g,\"lambda_reg\":%.6g,\"sparsity\":%.6f,"
      "\"active_mean\":%.5f,\"active_zero\":%.5f,\"load_max_mean\":%.4f,\"aux_loss\":%.6g",
      lm, reg, (double)lambda_used, (double)lambda_used * reg, S, active_mean, zero, worst_ratio, aux);
  if (size && len + 1 >= size) { /* a cut record would not parse: keep the keys the spec requires */
    len = 0;
    put(buf, size, &len, ",\"lambda\":%.6g,\"sparsity\":%.6f", (double)lambda_used, S);
  }
  m->step++;
  if (m->log_path) {
    char *line = m->line;
    size_t n = 0;
    put(line, sizeof m->line, &n, "{\"step\":%" PRId64 ",\"lambda\":%.9g,\"sparsity\":%.6f,\"loss_lm\":%.6f,"
        "\"loss_reg\":%.6g,\"aux_loss\":%.6g,\"sparsity_layers\":[", m->step, (double)lambda_used, S, lm, reg, aux);
    for (int64_t j = 0; j < L; j++) put(line, sizeof m->line, &n, "%s%.5f", j ? "," : "", Sl[j]);
    put(line, sizeof m->line, &n, "],\"active\":{\"mean\":%.5f,\"p50\":%d,\"p99\":%d,\"max\":%d,\"zero\":%.5f},\"load\":[",
        active_mean, percentile(m->hist, E, pairs, 0.5), percentile(m->hist, E, pairs, 0.99),
        percentile(m->hist, E, pairs, 1.0), zero);
    for (int64_t j = 0; j < L; j++) {
      put(line, sizeof m->line, &n, "%s[", j ? "," : "");
      for (int64_t e = 0; e < E; e++)
        put(line, sizeof m->line, &n, "%s%.5f", e ? "," : "", m->rows ? (double)m->counts[j][e] / (double)m->rows : 0.0);
      put(line, sizeof m->line, &n, "]");
    }
    put(line, sizeof m->line, &n, "],\"load_max_mean\":[");
    for (int64_t j = 0; j < L; j++) put(line, sizeof m->line, &n, "%s%.4f", j ? "," : "", ratio[j]);
    put(line, sizeof m->line, &n, "],\"starved\":[");
    for (int64_t j = 0; j < L; j++) put(line, sizeof m->line, &n, "%s%d", j ? "," : "", starved[j]);
    put(line, sizeof m->line, &n, "]}\n");
    FILE *f = fopen(m->log_path, "ab");
    if (f) {
      fputs(line, f);
      fclose(f);
    }
  }
  /* the controller sees the step's sparsity once, after its optimizer update */
  if (m->relu) sparq_moe_lambda_update(&m->ctl, S);
  snprintf(m->text[TXT_LAMBDA], 32, "%.9g", m->ctl.lambda);
  m->micros = 0;
  m->lm = m->reg = m->aux = 0.0;
  m->rows = 0;
  memset(m->sparsity, 0, sizeof m->sparsity);
  memset(m->counts, 0, sizeof m->counts);
  memset(m->hist, 0, sizeof m->hist);
}
