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

#define CKPT_NAME "ckpt.safetensors"
#define EMA_NAME "ema.safetensors"
#define EMA_PREFIX "ema."
#define LOG_NAME "log.jsonl"
#define DATA_STREAM 0x64617461u /* "data" */
#define CKPT_FORMAT "sparq-train-1"

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
  if (c->momentum > 0 && c->optim != SPARQ_OPTIM_SIGNGD)
    return sparq_fail(SPARQ_ERR_ARG, "train: --momentum applies to --optim signgd only");
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
  float *ema; /* the weights' moving average (NULL without --ema), the list's layout */
  char path_ckpt[4200], path_log[4200], path_ema[4200];
} run_state;

/* The states a checkpoint carries besides the weights: the optimizer's and
 * the EMA. Returns how many. */
static size_t run_states(const sparq_train_config *c, const sparq_trainable *m, run_state *rs,
                         sparq_ckpt_state out[3]) {
  size_t n = 0;
  if (uses_state(c)) {
    out[n++] = (sparq_ckpt_state){"optimizer.exp_avg.", rs->adam.exp_avg, rs->adam.numel};
    if (c->optim == SPARQ_OPTIM_ADAMW)
      out[n++] = (sparq_ckpt_state){"optimizer.exp_avg_sq.", rs->adam.exp_avg_sq, rs->adam.numel};
  }
  if (rs->ema) out[n++] = (sparq_ckpt_state){EMA_PREFIX, rs->ema, m->params->numel};
  return n;
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
  snprintf(v[5], 64, "%s", c->optim == SPARQ_OPTIM_SIGNGD ? "signgd" : "adamw");
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
  snprintf(v[16], 64, "%" PRId64, rs->adam.step);
  snprintf(v[17], 64, "%.9g", c->momentum);
  size_t n = m->meta_count + TRAIN_META;
  sparq_metadata_entry *meta = sparq_alloc(n * sizeof *meta, "checkpoint metadata");
  if (!meta) return SPARQ_ERR_NOMEM;
  for (size_t i = 0; i < m->meta_count; i++) meta[i] = m->meta[i];
  for (size_t i = 0; i < TRAIN_META; i++) meta[m->meta_count + i] = (sparq_metadata_entry){k[i], v[i]};
  sparq_ckpt_state states[3];
  const size_t ns = run_states(c, m, rs, states);
  sparq_status s = sparq_checkpoint_save_states(rs->path_ckpt, m->params, states, ns, m->aliases, m->alias_count,
                                                meta, n);
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

static sparq_status resume_from(const sparq_train_config *c, const sparq_trainable *m, run_state *rs) {
  sparq_safetensors *st = NULL;
  sparq_ckpt_state states[3];
  const size_t ns = run_states(c, m, rs, states);
  sparq_status s = sparq_checkpoint_load_states(rs->path_ckpt, m->params, states, ns, &st);
  if (s) return s;
  uint64_t step = 0, seed = 0, stream = 0, position = 0, adam_step = 0;
  if (!(s = meta_u64(st, "step", &step)) && !(s = meta_u64(st, "data_seed", &seed)) &&
      !(s = meta_u64(st, "data_stream", &stream)) && !(s = meta_u64(st, "data_position", &position)) &&
      !(s = meta_u64(st, "adam_step", &adam_step))) {
    const char *optim = sparq_safetensors_metadata(st, "optim");
    const char *want = c->optim == SPARQ_OPTIM_SIGNGD ? "signgd" : "adamw";
    if (!optim || strcmp(optim, want) != 0)
      s = sparq_fail(SPARQ_ERR_ARG, "%s: the run used optimizer '%s', this one '%s'", rs->path_ckpt,
                     optim ? optim : "?", want);
    else if (step > (uint64_t)c->steps)
      s = sparq_fail(SPARQ_ERR_ARG, "%s: checkpoint is at step %" PRIu64 ", past --steps %" PRId64, rs->path_ckpt,
                     step, c->steps);
  }
  sparq_safetensors_close(st);
  if (s) return s;
  rs->step = (int64_t)step;
  rs->data_rng = (sparq_rng){.seed = seed, .stream = stream, .position = position};
  rs->adam.step = (int64_t)adam_step;
  return truncate_log(rs->path_log, rs->step);
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

sparq_status sparq_train_run(const sparq_train_config *c, sparq_trainable *m, sparq_train_result *result) {
  sparq_status s = check_config(c, m);
  if (s) return s;
  if ((s = make_dirs(c->out_dir))) return s;
  run_state rs;
  memset(&rs, 0, sizeof rs);
  snprintf(rs.path_ckpt, sizeof rs.path_ckpt, "%s/%s", c->out_dir, CKPT_NAME);
  snprintf(rs.path_log, sizeof rs.path_log, "%s/%s", c->out_dir, LOG_NAME);
  rs.data_rng = sparq_rng_make(c->seed, DATA_STREAM);
  snprintf(rs.path_ema, sizeof rs.path_ema, "%s/%s", c->out_dir, EMA_NAME);
  if (uses_state(c) && (s = sparq_adamw_init(&rs.adam, m->params))) return s;
  if (c->ema > 0) {
    rs.ema = sparq_alloc(m->params->numel * sizeof *rs.ema, "EMA weights");
    if (!rs.ema) {
      sparq_adamw_free(&rs.adam);
      return SPARQ_ERR_NOMEM;
    }
    sparq_ema_update(rs.ema, m->params, 0.0f); /* DiT starts the average at the weights */
  }
  if (c->resume) {
    s = resume_from(c, m, &rs);
  } else {
    s = sparq_write_file_atomic(rs.path_log, "", 0); /* a fresh run starts a fresh log */
  }
  if (s) {
    sparq_adamw_free(&rs.adam);
    sparq_free(rs.ema);
    return s;
  }
  const int64_t end = c->stop_at ? c->stop_at : c->steps;
  const int64_t first = rs.step;
  sparq_train_result res = {.steps_done = rs.step, .last_loss = NAN, .last_eval = NAN};
  sparq_progress prog;
  if (!c->quiet) sparq_progress_begin(&prog, stderr, "train", "step", end - first);
  double t_start = sparq_now();
  char line[512], extra[128];
  while (rs.step < end && !s) {
    double t0 = sparq_now();
    sparq_params_zero_grad(m->params);
    float loss = 0.0f;
    for (int64_t a = 0; a < c->accum && !s; a++) {
      float micro = 0.0f;
      s = m->train_micro(m->self, &rs.data_rng, 1.0f / (float)c->accum, &micro);
      loss += micro / (float)c->accum;
    }
    if (s) break;
    double norm = sparq_grad_clip(m->params, c->clip);
    if (!isfinite(loss) || !isfinite(norm)) {
      s = sparq_fail(SPARQ_ERR_FORMAT, "train: step %" PRId64 " has a non-finite %s (loss %g, gradient norm %g); stopping",
                     rs.step + 1, isfinite(loss) ? "gradient" : "loss", loss, norm);
      break;
    }
    float lr = sparq_lr_cosine(rs.step, c->lr, c->min_lr, c->warmup, c->steps);
    if (c->optim == SPARQ_OPTIM_ADAMW) {
      if ((s = sparq_adamw_step(&rs.adam, m->params, &c->adamw, lr))) break;
    } else {
      if (c->momentum > 0) sparq_signgd_momentum(m->params, rs.adam.exp_avg, c->momentum);
      sparq_signgd_step(m->params, c->adamw.weight_decay, lr);
    }
    if (rs.ema) sparq_ema_update(rs.ema, m->params, c->ema);
    rs.step++;
    double dt = sparq_now() - t0;
    double tps = m->tokens_per_micro > 0 ? (double)(m->tokens_per_micro * c->accum) / dt : 0.0;
    char fields[256] = "";
    if (m->log_extra) m->log_extra(m->self, fields, sizeof fields);
    snprintf(line, sizeof line,
             "{\"step\":%" PRId64 ",\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens_per_s\":%.1f,"
             "\"elapsed\":%.3f%s}\n",
             rs.step, loss, lr, norm, tps, sparq_now() - t_start, fields);
    if ((s = log_line(rs.path_log, line))) break;
    res.last_loss = loss;
    bool last = rs.step == end;
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
  if (result) *result = res;
  sparq_adamw_free(&rs.adam);
  sparq_free(rs.ema);
  return s;
}
