/* The model-agnostic training loop: micro-batches, clipping, optimizer,
 * schedule, evaluation, JSONL log, atomic checkpoints and bit-exact resume. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sparq/train.h"
#include "train/trainer_internal.h"

#define CKPT_NAME "ckpt.safetensors"
#define EMA_NAME "ema.safetensors"
#define EMA_PREFIX "ema."
#define LOG_NAME "log.jsonl"
#define COAT_LOG_NAME "coat.jsonl"
#define MEMORY_NAME "memory.json"
#define COAT_LOG_EVERY 50
#define SHADOW_M "fp8_shadow.exp_avg."
#define SHADOW_V "fp8_shadow.exp_avg_sq."
#define DATA_STREAM 0x64617461u /* "data" */
#define CKPT_FORMAT "sparq-train-1"

const char *sparq_optim_name(sparq_optim optim) {
  switch (optim) {
    case SPARQ_OPTIM_ADAMW: return "adamw";
    case SPARQ_OPTIM_SIGNGD: return "signgd";
    case SPARQ_OPTIM_ADAMW_FP8: return "adamw-fp8";
    case SPARQ_OPTIM_ADAMW_FP8_NODRE: return "adamw-fp8-nodre";
  }
  return NULL;
}

static bool is_fp8(const sparq_train_config *c) {
  return c->optim == SPARQ_OPTIM_ADAMW_FP8 || c->optim == SPARQ_OPTIM_ADAMW_FP8_NODRE;
}

static sparq_status check_config(const sparq_train_config *c, const sparq_trainable *m) {
  if (!c || !m || !m->params || !m->train_micro || !m->eval)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_train_run: NULL config, model or callback");
  if (!c->out_dir || !*c->out_dir) return sparq_fail(SPARQ_ERR_ARG, "sparq_train_run: no output directory");
  if (c->steps < 1) return sparq_fail(SPARQ_ERR_ARG, "train: --steps %" PRId64 " must be >= 1", c->steps);
  if (c->stop_at < 0 || c->stop_at > c->steps)
    return sparq_fail(SPARQ_ERR_ARG, "train: --stop-at %" PRId64 " must be in 0..steps (%" PRId64 ")", c->stop_at,
                      c->steps);
  if (c->accum < 1) return sparq_fail(SPARQ_ERR_ARG, "train: --accum %" PRId64 " must be >= 1", c->accum);
  if (c->warmup < 0 || c->eval_every < 0 || c->ckpt_every < 0)
    return sparq_fail(SPARQ_ERR_ARG, "train: --warmup, --eval-every and --ckpt-every must be >= 0");
  if (!(c->lr > 0) || !isfinite(c->lr) || !(c->min_lr >= 0) || !isfinite(c->min_lr))
    return sparq_fail(SPARQ_ERR_ARG, "train: learning rates must be finite, lr > 0 and min_lr >= 0");
  if (!(c->clip >= 0) || !isfinite(c->clip)) return sparq_fail(SPARQ_ERR_ARG, "train: --clip must be finite and >= 0");
  if (!(c->momentum >= 0 && c->momentum < 1))
    return sparq_fail(SPARQ_ERR_ARG, "train: --momentum must be in [0, 1)");
  if (!(c->ema >= 0 && c->ema < 1)) return sparq_fail(SPARQ_ERR_ARG, "train: --ema must be in [0, 1)");
  if (!sparq_optim_name(c->optim)) return sparq_fail(SPARQ_ERR_ARG, "train: unknown optimizer %d", (int)c->optim);
  if (c->momentum > 0 && c->optim != SPARQ_OPTIM_SIGNGD)
    return sparq_fail(SPARQ_ERR_ARG, "train: --momentum applies to --optim signgd only");
  if ((c->fp8_m_format != SPARQ_FP8_E4M3 && c->fp8_m_format != SPARQ_FP8_E5M2) ||
      (c->fp8_v_format != SPARQ_FP8_E4M3 && c->fp8_v_format != SPARQ_FP8_E5M2))
    return sparq_fail(SPARQ_ERR_ARG, "train: unknown FP8 format for --fp8-m or --fp8-v");
  if (c->fp8_shadow && !is_fp8(c))
    return sparq_fail(SPARQ_ERR_ARG, "train: --fp8-shadow applies to --optim adamw-fp8 and adamw-fp8-nodre only");
  const sparq_adamw_config *a = &c->adamw;
  if (!(a->beta1 >= 0 && a->beta1 < 1) || !(a->beta2 >= 0 && a->beta2 < 1) || !(a->eps >= 0) ||
      !(a->weight_decay >= 0) || !isfinite(a->eps) || !isfinite(a->weight_decay))
    return sparq_fail(SPARQ_ERR_ARG, "train: betas must be in [0, 1), eps and weight decay finite and >= 0");
  return SPARQ_OK;
}

/* mkdir -p for the run directory. */
static sparq_status make_dirs(const char *path) {
  char buf[4096];
  size_t n = strlen(path);
  if (n >= sizeof buf) return sparq_fail(SPARQ_ERR_ARG, "%s: path too long", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return sparq_fail(SPARQ_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    buf[i] = saved;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return sparq_fail(SPARQ_ERR_IO, "%s: not a directory", path);
  return SPARQ_OK;
}

/* AdamW keeps its moments, Signum its momentum (in exp_avg) in rs->adam. */
static bool uses_state(const sparq_train_config *c) {
  return c->optim == SPARQ_OPTIM_ADAMW || c->momentum > 0;
}

typedef struct run_state {
  int64_t step; /* completed optimizer steps */
  sparq_rng data_rng;
  sparq_adamw_state adam;
  sparq_adamw_fp8_state fp8; /* the FP8 optimizers' state */
  float *ema; /* the weights' moving average (NULL without --ema), the list's layout */
  size_t act_bytes; /* largest saved-activation bytes the model reported */
  char path_ckpt[4200], path_log[4200], path_ema[4200], path_coat[4200], path_memory[4200];
} run_state;

static void run_state_free(run_state *rs) {
  sparq_adamw_free(&rs->adam);
  sparq_adamw_fp8_free(&rs->fp8);
  sparq_free(rs->ema);
  rs->ema = NULL;
}

/* The states a checkpoint carries besides the weights: the optimizer's and
 * the EMA. Returns how many. */
static size_t run_states(const sparq_train_config *c, const sparq_trainable *m, run_state *rs,
                         sparq_ckpt_state out[5]) {
  size_t n = 0;
  if (uses_state(c)) {
    out[n++] = (sparq_ckpt_state){"optimizer.exp_avg.", rs->adam.exp_avg, rs->adam.numel};
    if (c->optim == SPARQ_OPTIM_ADAMW)
      out[n++] = (sparq_ckpt_state){"optimizer.exp_avg_sq.", rs->adam.exp_avg_sq, rs->adam.numel};
  }
  if (rs->ema) out[n++] = (sparq_ckpt_state){EMA_PREFIX, rs->ema, m->params->numel};
  return n;
}

/* The FP8 optimizer's FP32 shadow as two more states. */
static size_t shadow_states(const run_state *rs, sparq_ckpt_state *out) {
  const sparq_adamw_state *sh = rs->fp8.shadow;
  if (!sh) return 0;
  out[0] = (sparq_ckpt_state){SHADOW_M, sh->exp_avg, sh->numel};
  out[1] = (sparq_ckpt_state){SHADOW_V, sh->exp_avg_sq, sh->numel};
  return 2;
}

static sparq_status save_checkpoint(const sparq_train_config *c, const sparq_trainable *m, run_state *rs) {
  enum { TRAIN_META = 18 };
  char v[TRAIN_META][64];
  const char *k[TRAIN_META] = {"format",  "step",         "data_seed", "data_stream", "data_position",
                               "optim",   "steps",        "warmup",    "accum",       "lr",
                               "min_lr",  "clip",         "beta1",     "beta2",       "eps",
                               "weight_decay", "adam_step", "momentum"};
  snprintf(v[0], 64, "%s", CKPT_FORMAT);
  snprintf(v[1], 64, "%" PRId64, rs->step);
  snprintf(v[2], 64, "%" PRIu64, rs->data_rng.seed);
  snprintf(v[3], 64, "%" PRIu64, rs->data_rng.stream);
  snprintf(v[4], 64, "%" PRIu64, rs->data_rng.position);
  snprintf(v[5], 64, "%s", sparq_optim_name(c->optim));
  snprintf(v[6], 64, "%" PRId64, c->steps);
  snprintf(v[7], 64, "%" PRId64, c->warmup);
  snprintf(v[8], 64, "%" PRId64, c->accum);
  snprintf(v[9], 64, "%.9g", c->lr);
  snprintf(v[10], 64, "%.9g", c->min_lr);
  snprintf(v[11], 64, "%.9g", c->clip);
  snprintf(v[12], 64, "%.9g", c->adamw.beta1);
  snprintf(v[13], 64, "%.9g", c->adamw.beta2);
  snprintf(v[14], 64, "%.9g", c->adamw.eps);
  snprintf(v[15], 64, "%.9g", c->adamw.weight_decay);
  snprintf(v[16], 64, "%" PRId64, is_fp8(c) ? rs->fp8.step : rs->adam.step);
  snprintf(v[17], 64, "%.9g", c->momentum);
  enum { FP8_META = 4 };
  char fv[FP8_META][16];
  const char *fk[FP8_META] = {"fp8_m_format", "fp8_v_format", "fp8_group", "fp8_shadow"};
  snprintf(fv[0], 16, "%s", sparq_fp8_format_name(c->fp8_m_format));
  snprintf(fv[1], 16, "%s", sparq_fp8_format_name(c->fp8_v_format));
  snprintf(fv[2], 16, "%d", SPARQ_FP8_GROUP);
  snprintf(fv[3], 16, "%d", rs->fp8.shadow ? 1 : 0);
  const size_t nf = is_fp8(c) ? FP8_META : 0;
  size_t n = m->meta_count + TRAIN_META + nf;
  sparq_metadata_entry *meta = sparq_alloc(n * sizeof *meta, "checkpoint metadata");
  if (!meta) return SPARQ_ERR_NOMEM;
  for (size_t i = 0; i < m->meta_count; i++) meta[i] = m->meta[i];
  for (size_t i = 0; i < TRAIN_META; i++) meta[m->meta_count + i] = (sparq_metadata_entry){k[i], v[i]};
  for (size_t i = 0; i < nf; i++) meta[m->meta_count + TRAIN_META + i] = (sparq_metadata_entry){fk[i], fv[i]};
  sparq_ckpt_state states[5];
  size_t ns = run_states(c, m, rs, states);
  ns += shadow_states(rs, states + ns);
  sparq_ckpt_tensor *typed = NULL;
  char *names = NULL;
  size_t nt = 0;
  sparq_status s = is_fp8(c) ? trainer_fp8_ckpt_tensors(&rs->fp8, m->params, &typed, &names, &nt) : SPARQ_OK;
  if (!s)
    s = sparq_checkpoint_save_ex(rs->path_ckpt, m->params, states, ns, typed, nt, m->aliases, m->alias_count, meta, n);
  free(typed);
  free(names);
  if (!s && rs->ema) {
    /* the averaged weights under the model's own names, loadable as a model */
    sparq_param_list view = *m->params;
    view.data = rs->ema;
    s = sparq_checkpoint_save_states(rs->path_ema, &view, NULL, 0, m->aliases, m->alias_count, meta, n);
  }
  sparq_free(meta);
  return s;
}

static sparq_status meta_u64(const sparq_safetensors *st, const char *key, uint64_t *out) {
  const char *s = sparq_safetensors_metadata(st, key);
  if (!s) return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata has no '%s' (not a sparq training checkpoint?)", st->path, key);
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end != '\0' || s[0] == '-')
    return sparq_fail(SPARQ_ERR_FORMAT, "%s: metadata '%s' = '%.40s' is not a non-negative integer", st->path, key, s);
  *out = (uint64_t)v;
  return SPARQ_OK;
}

/* Keeps only the log records of steps <= `step`, so a resumed run's log
 * reads as if it had never stopped. Records are one JSON object per line
 * starting with {"step":N. */
static sparq_status truncate_log(const char *path, int64_t step) {
  FILE *f = fopen(path, "rb");
  if (!f) return SPARQ_OK; /* no log yet */
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory reading the log", path);
  }
  size_t got;
  while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return sparq_fail(SPARQ_ERR_NOMEM, "%s: out of memory reading the log", path);
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  size_t keep = 0;
  for (size_t pos = 0; pos < len;) {
    char *nl = memchr(buf + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - buf) + 1 : len;
    long long s = -1;
    if (!nl || sscanf(buf + pos, "{\"step\":%lld", &s) != 1 || s > step) break;
    keep = end;
    pos = end;
  }
  sparq_status st = sparq_write_file_atomic(path, buf, keep);
  free(buf);
  return st;
}

/* The checkpoint must come from the same optimizer (and FP8 formats). */
static sparq_status check_resume_optim(const sparq_train_config *c, const sparq_safetensors *st) {
  const char *optim = sparq_safetensors_metadata(st, "optim");
  const char *want = sparq_optim_name(c->optim);
  if (!optim || strcmp(optim, want) != 0)
    return sparq_fail(SPARQ_ERR_ARG, "%s: the run used optimizer '%s', this one '%s'; resume with --optim %s", st->path,
                      optim ? optim : "?", want, optim ? optim : "?");
  if (!is_fp8(c)) return SPARQ_OK;
  const char *keys[2] = {"fp8_m_format", "fp8_v_format"};
  const sparq_fp8_format mine[2] = {c->fp8_m_format, c->fp8_v_format};
  for (int i = 0; i < 2; i++) {
    const char *have = sparq_safetensors_metadata(st, keys[i]);
    if (!have || strcmp(have, sparq_fp8_format_name(mine[i])) != 0)
      return sparq_fail(SPARQ_ERR_ARG, "%s: the run stored its optimizer state with %s = '%s', this one '%s'", st->path,
                        keys[i], have ? have : "?", sparq_fp8_format_name(mine[i]));
  }
  const char *group = sparq_safetensors_metadata(st, "fp8_group");
  if (!group || atoi(group) != SPARQ_FP8_GROUP)
    return sparq_fail(SPARQ_ERR_ARG, "%s: FP8 group size '%s', this build uses %d", st->path, group ? group : "?",
                      SPARQ_FP8_GROUP);
  return SPARQ_OK;
}

/* Loaded FP8 side data must be usable: scale, k and c finite and > 0 (the
 * checkpoint is untrusted input; codes are any byte). */
static sparq_status check_fp8_loaded(const sparq_adamw_fp8_state *f, const char *path) {
  const sparq_fp8_moment *mom[2] = {&f->m, &f->v};
  for (int j = 0; j < 2; j++)
    for (size_t i = 0; i < f->ngroups; i++) {
      const float a = mom[j]->scale[i], k = mom[j]->k[i], cc = mom[j]->c[i];
      if (!(isfinite(a) && a > 0 && isfinite(k) && k > 0 && isfinite(cc) && cc > 0))
        return sparq_fail(SPARQ_ERR_FORMAT, "%s: the FP8 %s state has scale %g, k %g, c %g in group %zu (must be finite "
                          "and > 0)", path, j ? "exp_avg_sq" : "exp_avg", a, k, cc, i);
    }
  return SPARQ_OK;
}

static sparq_status resume_from(const sparq_train_config *c, const sparq_trainable *m, run_state *rs) {
  sparq_safetensors *st = NULL;
  sparq_status s = sparq_safetensors_open(rs->path_ckpt, &st);
  if (s) return s;
  s = check_resume_optim(c, st);
  const char *sh = sparq_safetensors_metadata(st, "fp8_shadow");
  const bool has_shadow = rs->fp8.shadow && sh && !strcmp(sh, "1");
  sparq_ckpt_state states[5];
  size_t ns = run_states(c, m, rs, states);
  if (has_shadow) ns += shadow_states(rs, states + ns);
  sparq_ckpt_tensor *typed = NULL;
  char *names = NULL;
  size_t nt = 0;
  if (!s && is_fp8(c)) s = trainer_fp8_ckpt_tensors(&rs->fp8, m->params, &typed, &names, &nt);
  if (!s) s = sparq_checkpoint_read(st, m->params, states, ns, typed, nt);
  free(typed);
  free(names);
  if (!s && is_fp8(c)) s = check_fp8_loaded(&rs->fp8, rs->path_ckpt);
  uint64_t step = 0, seed = 0, stream = 0, position = 0, adam_step = 0;
  if (!s && !(s = meta_u64(st, "step", &step)) && !(s = meta_u64(st, "data_seed", &seed)) &&
      !(s = meta_u64(st, "data_stream", &stream)) && !(s = meta_u64(st, "data_position", &position)) &&
      !(s = meta_u64(st, "adam_step", &adam_step))) {
    if (step > (uint64_t)c->steps)
      s = sparq_fail(SPARQ_ERR_ARG, "%s: checkpoint is at step %" PRIu64 ", past --steps %" PRId64, rs->path_ckpt,
                     step, c->steps);
  }
  sparq_safetensors_close(st);
  if (s) return s;
  rs->step = (int64_t)step;
  rs->data_rng = (sparq_rng){.seed = seed, .stream = stream, .position = position};
  rs->adam.step = (int64_t)adam_step;
  if (is_fp8(c)) {
    rs->fp8.step = (int64_t)adam_step;
    if (rs->fp8.shadow) {
      rs->fp8.shadow->step = (int64_t)adam_step;
      /* a run that did not keep the shadow starts it from the FP8 state */
      for (size_t t = 0; t < rs->fp8.ntensors && !has_shadow && !s; t++) {
        const size_t off = rs->fp8.tensors[t].offset;
        s = sparq_adamw_fp8_dequantize(&rs->fp8, t, rs->fp8.shadow->exp_avg + off, rs->fp8.shadow->exp_avg_sq + off);
      }
    }
    if (!s) s = truncate_log(rs->path_coat, rs->step);
  }
  if (!s) s = truncate_log(rs->path_log, rs->step);
  return s;
}

static sparq_status log_line(const char *path, const char *line) {
  FILE *f = fopen(path, "ab");
  if (!f) return sparq_fail(SPARQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  int ok = fputs(line, f) >= 0;
  ok = (fclose(f) == 0) && ok;
  return ok ? SPARQ_OK : sparq_fail(SPARQ_ERR_IO, "%s: write failed", path);
}

static sparq_status run_eval(const sparq_trainable *m, const run_state *rs, float *out) {
  float loss = NAN;
  sparq_status s = m->eval(m->self, &loss);
  if (s) return s;
  if (!isfinite(loss))
    return sparq_fail(SPARQ_ERR_FORMAT, "train: held-out loss is %g at step %" PRId64 "; stopping", loss, rs->step);
  char line[128];
  snprintf(line, sizeof line, "{\"step\":%" PRId64 ",\"eval_loss\":%.6f}\n", rs->step, loss);
  *out = loss;
  return log_line(rs->path_log, line);
}

static sparq_status optimizer_init(const sparq_train_config *c, const sparq_trainable *m, run_state *rs) {
  if (uses_state(c)) return sparq_adamw_init(&rs->adam, m->params);
  if (!is_fp8(c)) return SPARQ_OK;
  sparq_adamw_fp8_config fc = sparq_adamw_fp8_config_default();
  fc.m_format = c->fp8_m_format;
  fc.v_format = c->fp8_v_format;
  fc.dre = c->optim == SPARQ_OPTIM_ADAMW_FP8;
  fc.shadow = c->fp8_shadow;
  return sparq_adamw_fp8_init(&rs->fp8, m->params, &fc);
}

static sparq_status optimizer_step(const sparq_train_config *c, const sparq_trainable *m, run_state *rs, float lr) {
  if (c->optim == SPARQ_OPTIM_ADAMW) return sparq_adamw_step(&rs->adam, m->params, &c->adamw, lr);
  if (is_fp8(c)) return sparq_adamw_fp8_step(&rs->fp8, m->params, &c->adamw, lr);
  if (c->momentum > 0) sparq_signgd_momentum(m->params, rs->adam.exp_avg, c->momentum);
  sparq_signgd_step(m->params, c->adamw.weight_decay, lr);
  return SPARQ_OK;
}

/* A fresh run starts fresh logs; coat.jsonl exists only for FP8 runs. */
static sparq_status fresh_logs(const sparq_train_config *c, const run_state *rs) {
  sparq_status s = sparq_write_file_atomic(rs->path_log, "", 0);
  if (!s && is_fp8(c)) s = sparq_write_file_atomic(rs->path_coat, "", 0);
  if (!s && !is_fp8(c) && remove(rs->path_coat) != 0 && errno != ENOENT)
    s = sparq_fail(SPARQ_ERR_IO, "%s: cannot remove the stale log: %s", rs->path_coat, strerror(errno));
  return s;
}

static void print_ledger(const sparq_memory_ledger *l) {
  char act[96] = "activations not reported by this model";
  if (l->activations_reported)
    snprintf(act, sizeof act, "activations %zu B (saved for backward, after the first step)", l->activation_bytes);
  fprintf(stderr, "memory: parameters %zu B, gradients %zu B, optimizer state %zu B, %s, total %zu B\n",
          l->params_bytes, l->grads_bytes, l->optimizer_state_bytes, act, l->total_bytes);
}

sparq_status sparq_train_run(const sparq_train_config *c, sparq_trainable *m, sparq_train_result *result) {
  const size_t rss_start = trainer_rss_now();
  sparq_status s = check_config(c, m);
  if (s) return s;
  if ((s = make_dirs(c->out_dir))) return s;
  run_state rs;
  memset(&rs, 0, sizeof rs);
  snprintf(rs.path_ckpt, sizeof rs.path_ckpt, "%s/%s", c->out_dir, CKPT_NAME);
  snprintf(rs.path_log, sizeof rs.path_log, "%s/%s", c->out_dir, LOG_NAME);
  snprintf(rs.path_coat, sizeof rs.path_coat, "%s/%s", c->out_dir, COAT_LOG_NAME);
  snprintf(rs.path_memory, sizeof rs.path_memory, "%s/%s", c->out_dir, MEMORY_NAME);
  rs.data_rng = sparq_rng_make(c->seed, DATA_STREAM);
  snprintf(rs.path_ema, sizeof rs.path_ema, "%s/%s", c->out_dir, EMA_NAME);
  if ((s = optimizer_init(c, m, &rs))) return s;
  if (c->ema > 0) {
    rs.ema = sparq_alloc(m->params->numel * sizeof *rs.ema, "EMA weights");
    if (!rs.ema) {
      run_state_free(&rs);
      return SPARQ_ERR_NOMEM;
    }
    sparq_ema_update(rs.ema, m->params, 0.0f); /* DiT starts the average at the weights */
  }
  if (c->resume) {
    s = resume_from(c, m, &rs);
  } else {
    s = fresh_logs(c, &rs);
  }
  if (s) {
    run_state_free(&rs);
    return s;
  }
  const int64_t end = c->stop_at ? c->stop_at : c->steps;
  const int64_t first = rs.step;
  sparq_train_result res = {.steps_done = rs.step, .last_loss = NAN, .last_eval = NAN};
  sparq_progress prog;
  if (!c->quiet) sparq_progress_begin(&prog, stderr, "train", "step", end - first);
  double t_start = sparq_now();
  char line[2048], extra[128];
  while (rs.step < end && !s) {
    double t0 = sparq_now();
    sparq_params_zero_grad(m->params);
    float loss = 0.0f;
    size_t step_act = 0; /* the step's largest saved activations (micro-batches run one at a time) */
    for (int64_t a = 0; a < c->accum && !s; a++) {
      float micro = 0.0f;
      s = m->train_micro(m->self, &rs.data_rng, 1.0f / (float)c->accum, &micro);
      loss += micro / (float)c->accum;
      if (!s && m->activation_bytes) {
        const size_t act = m->activation_bytes(m->self);
        if (act > step_act) step_act = act;
      }
    }
    if (step_act > rs.act_bytes) rs.act_bytes = step_act;
    if (s) break;
    double norm = sparq_grad_clip(m->params, c->clip);
    if (!isfinite(loss) || !isfinite(norm)) {
      s = sparq_fail(SPARQ_ERR_FORMAT, "train: step %" PRId64 " has a non-finite %s (loss %g, gradient norm %g); stopping",
                     rs.step + 1, isfinite(loss) ? "gradient" : "loss", loss, norm);
      break;
    }
    float lr = sparq_lr_cosine(rs.step, c->lr, c->min_lr, c->warmup, c->steps);
    if ((s = optimizer_step(c, m, &rs, lr))) break;
    if (rs.ema) sparq_ema_update(rs.ema, m->params, c->ema);
    rs.step++;
    double dt = sparq_now() - t0;
    double tps = m->tokens_per_micro > 0 ? (double)(m->tokens_per_micro * c->accum) / dt : 0.0;
    char fields[1536] = "", fp8[160] = "";
    if (m->log_extra) m->log_extra(m->self, fields, sizeof fields);
    char act_field[48] = "";
    if (m->activation_bytes) snprintf(act_field, sizeof act_field, ",\"activation_bytes\":%zu", step_act);
    if (is_fp8(c)) {
      const sparq_adamw_fp8_counters *k = &rs.fp8.last;
      snprintf(fp8, sizeof fp8, ",\"nan_params\":%" PRIu64 ",\"nan_m\":%" PRIu64 ",\"nan_v\":%" PRIu64
               ",\"v_flush\":%" PRIu64, k->nan_params, k->nan_m, k->nan_v, k->v_flush);
    }
    snprintf(line, sizeof line,
             "{\"step\":%" PRId64 ",\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens_per_s\":%.1f,"
             "\"elapsed\":%.3f%s%s%s}\n",
             rs.step, loss, lr, norm, tps, sparq_now() - t_start, act_field, fp8, fields);
    if ((s = log_line(rs.path_log, line))) break;
    res.last_loss = loss;
    bool last = rs.step == end;
    if (is_fp8(c) && (rs.step % COAT_LOG_EVERY == 0 || rs.step == c->steps)) {
      if ((s = trainer_fp8_log(rs.path_coat, &rs.fp8, m->params, &c->adamw, rs.step))) break;
    }
    if (!c->quiet && rs.step == first + 1) {
      sparq_memory_ledger l = sparq_memory_ledger_make(m->params, c->optim, c->momentum, rs.act_bytes);
      l.activations_reported = m->activation_bytes != NULL;
      print_ledger(&l);
    }
    if ((c->eval_every > 0 && rs.step % c->eval_every == 0) || last) {
      if ((s = run_eval(m, &rs, &res.last_eval))) break;
    }
    if ((c->ckpt_every > 0 && rs.step % c->ckpt_every == 0) || last) {
      if ((s = save_checkpoint(c, m, &rs))) break;
    }
    if (!c->quiet) {
      if (isfinite(res.last_eval))
        snprintf(extra, sizeof extra, "loss %.4f eval %.4f %.0f tok/s", loss, res.last_eval, tps);
      else
        snprintf(extra, sizeof extra, "loss %.4f %.0f tok/s", loss, tps);
      sparq_progress_update(&prog, rs.step - first, extra);
    }
  }
  double seconds = sparq_now() - t_start;
  if (!c->quiet && !s) sparq_progress_end(&prog, NULL);
  res.steps_done = rs.step;
  res.seconds = seconds;
  res.tokens_per_s = seconds > 0 && m->tokens_per_micro > 0
                         ? (double)((rs.step - first) * c->accum * m->tokens_per_micro) / seconds
                         : 0.0;
  res.memory = sparq_memory_ledger_make(m->params, c->optim, c->momentum, rs.act_bytes);
  res.memory.activations_reported = m->activation_bytes != NULL;
  res.peak_rss_bytes = trainer_rss_peak();
  res.rss_start_bytes = rss_start;
  res.fp8 = rs.fp8.last;
  /* written even when the loop failed (an unstable run's ledger is still a
   * figure), without hiding the loop's error */
  if (s) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", sparq_last_error());
    if (trainer_memory_json(rs.path_memory, &res.memory, res.peak_rss_bytes, rss_start))
      sparq_fail(s, "%s", msg); /* keep the loop's message */
  } else {
    s = trainer_memory_json(rs.path_memory, &res.memory, res.peak_rss_bytes, rss_start);
  }
  if (result) *result = res;
  run_state_free(&rs);
  return s;
}
