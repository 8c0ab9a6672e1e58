/* The training arms of the 2-D toy study (spec gft.md 8.1): one arm's run
 * through the generic loop, or the reuse of a finished run whose signature
 * matches, so the evaluation can be repeated without retraining. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sparq/gft_toy.h"

#define EMA_FILE "ema.safetensors"
#define SIGNATURE_KEY "gft_toy_run"
#define MAX_ROWS (1 << 20)
/* the task's model + formulation entries plus our signature */
#define META_MAX 20

static const char *const ARM_NAMES[] = {"A", "B", "C"};

const char *sparq_gft_toy_arm_name(sparq_gft_toy_arm arm) {
  return (unsigned)arm < sizeof ARM_NAMES / sizeof ARM_NAMES[0] ? ARM_NAMES[arm] : NULL;
}

sparq_gft_toy_train_config sparq_gft_toy_train_config_default(void) {
  sparq_gft_toy_train_config c = {.arm = SPARQ_GFT_TOY_CFG, .steps = 20000, .seed = 0, .batch = 512, .ema = 0.999f};
  return c;
}

static sparq_status check_config(const sparq_gft_toy_train_config *c) {
  static const char who[] = "gft toy";
  if (!sparq_gft_toy_arm_name(c->arm)) return sparq_fail(SPARQ_ERR_ARG, "%s: unknown arm %d", who, (int)c->arm);
  if (c->steps < 1) return sparq_fail(SPARQ_ERR_ARG, "%s: steps %" PRId64 " < 1", who, c->steps);
  if (c->batch < 1 || c->batch > MAX_ROWS)
    return sparq_fail(SPARQ_ERR_ARG, "%s: batch %" PRId64 " is outside 1..%d", who, c->batch, MAX_ROWS);
  if (!(c->ema > 0.0f && c->ema < 1.0f))
    return sparq_fail(SPARQ_ERR_ARG, "%s: EMA decay %g is outside (0, 1)", who, (double)c->ema);
  if (!c->out_dir || !*c->out_dir) return sparq_fail(SPARQ_ERR_ARG, "%s: no run directory", who);
  if (c->arm == SPARQ_GFT_TOY_FINETUNE) {
    if (!c->init || !c->init_signature)
      return sparq_fail(SPARQ_ERR_ARG, "%s: arm C needs the CFG model and signature it starts from", who);
    if (sparq_toy_mlp_get_config(c->init)->gft)
      return sparq_fail(SPARQ_ERR_ARG, "%s: arm C starts from a CFG model, got a GFT one", who);
  }
  return SPARQ_OK;
}

/* Everything the arm's weights depend on, as one string: equal strings,
 * equal runs (the loop is deterministic and thread-count independent). */
static void make_signature(const sparq_gft_toy_train_config *c, const sparq_toy_mlp_config *mc,
                           const sparq_toy_task_config *tc, const sparq_train_config *trc,
                           const sparq_diffusion *diff, char *out, size_t size) {
  int n = snprintf(out, size,
                   "arm=%s objective=%s steps=%" PRId64 " seed=%" PRIu64 " batch=%" PRId64
                   " p_uncond=%.6g lr=%.6g ema=%.6g mlp=%" PRId64 "x%" PRId64 " %s/%s",
                   sparq_gft_toy_arm_name(c->arm), mc->gft ? "gft" : "cfg", c->steps, c->seed, tc->batch,
                   (double)tc->p_uncond, (double)trc->lr, (double)trc->ema, mc->depth, mc->hidden,
                   sparq_diff_kind_name(diff->kind), sparq_diff_pred_name(diff->pred));
  /* C's weights also depend on where it started; A's signature is short
   * enough that the two always fit (checked by the caller's buffer size) */
  if (c->arm == SPARQ_GFT_TOY_FINETUNE && n > 0 && (size_t)n < size)
    snprintf(out + n, size - (size_t)n, " init=[%s]", c->init_signature);
}

/* Loads out_dir/ema.safetensors into m when it is a finished run of this
 * signature. Returns true when it did; otherwise note says why not (empty
 * when there is no file). */
static bool try_reuse(const char *path, const char *signature, int64_t steps, sparq_toy_mlp *m, char *note,
                      size_t note_size) {
  note[0] = '\0';
  struct stat sb;
  if (stat(path, &sb) != 0) return false;
  sparq_safetensors *st = NULL;
  if (sparq_safetensors_open(path, &st)) {
    snprintf(note, note_size, "the run's %s is unreadable (%.160s); retraining", EMA_FILE, sparq_last_error());
    return false;
  }
  const char *have = sparq_safetensors_metadata(st, SIGNATURE_KEY);
  const char *step = sparq_safetensors_metadata(st, "step");
  char want_step[32];
  snprintf(want_step, sizeof want_step, "%" PRId64, steps);
  bool ok = false;
  if (!have || strcmp(have, signature) != 0)
    snprintf(note, note_size, "the run in the directory has other settings (%.160s); retraining",
             have ? have : "no signature");
  else if (!step || strcmp(step, want_step) != 0)
    snprintf(note, note_size, "the run in the directory stopped at step %.20s of %" PRId64 "; retraining",
             step ? step : "?", steps);
  else
    ok = true;
  sparq_safetensors_close(st);
  if (ok && sparq_checkpoint_load(path, sparq_toy_mlp_params(m), NULL, NULL)) {
    snprintf(note, note_size, "the run's %s does not load (%.160s); retraining", EMA_FILE, sparq_last_error());
    ok = false;
  }
  return ok;
}

sparq_status sparq_gft_toy_train_arm(const sparq_toy2d *toy, const sparq_diffusion *diff,
                                     const sparq_gft_toy_train_config *cfg, sparq_toy_mlp **model,
                                     sparq_gft_toy_train_result *result) {
  if (!toy || !diff || !cfg || !model || !result)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_gft_toy_train_arm: NULL argument");
  *model = NULL;
  memset(result, 0, sizeof *result);
  sparq_status s = check_config(cfg);
  if (s) return s;

  const bool gft = cfg->arm != SPARQ_GFT_TOY_CFG;
  sparq_toy_mlp_config mc = sparq_toy_mlp_config_default();
  mc.gft = gft;
  sparq_toy_task_config tc = sparq_toy_task_config_default();
  tc.batch = cfg->batch;
  tc.objective = gft ? SPARQ_TOY_OBJ_GFT : SPARQ_TOY_OBJ_CFG;
  sparq_train_config trc = sparq_toy_train_config_default();
  trc.steps = cfg->steps, trc.seed = cfg->seed, trc.ema = cfg->ema, trc.out_dir = cfg->out_dir;
  trc.quiet = cfg->quiet;
  make_signature(cfg, &mc, &tc, &trc, diff, result->signature, sizeof result->signature);

  sparq_toy_mlp *m = NULL;
  if ((s = sparq_toy_mlp_create(&mc, cfg->seed, &m))) return s;
  char path[4200];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", cfg->out_dir, EMA_FILE) >= sizeof path) {
    sparq_toy_mlp_free(m);
    return sparq_fail(SPARQ_ERR_ARG, "%s: run directory path too long", cfg->out_dir);
  }
  if (try_reuse(path, result->signature, cfg->steps, m, result->note, sizeof result->note)) {
    result->reused = true;
    *model = m;
    return SPARQ_OK;
  }
  /* try_reuse may have overwritten some tensors before failing: start over */
  sparq_toy_mlp_free(m);
  m = NULL;
  if ((s = sparq_toy_mlp_create(&mc, cfg->seed, &m))) return s;
  if (cfg->arm == SPARQ_GFT_TOY_FINETUNE && (s = sparq_toy_mlp_copy_from(m, cfg->init))) {
    sparq_toy_mlp_free(m);
    return s;
  }

  sparq_toy_task task;
  if ((s = sparq_toy_task_init(&task, m, toy, diff, &tc))) {
    sparq_toy_mlp_free(m);
    return s;
  }
  sparq_trainable tr;
  sparq_toy_task_trainable(&task, &tr);
  /* the task's metadata plus the signature the reuse check reads back */
  sparq_metadata_entry meta[META_MAX];
  size_t nmeta = 0;
  for (size_t i = 0; i < tr.meta_count && nmeta + 1 < META_MAX; i++) meta[nmeta++] = tr.meta[i];
  meta[nmeta++] = (sparq_metadata_entry){SIGNATURE_KEY, result->signature};
  tr.meta = meta, tr.meta_count = nmeta;
  s = sparq_train_run(&trc, &tr, &result->train);
  sparq_toy_task_free(&task);
  /* sample with the EMA weights, as they were written */
  if (!s) s = sparq_checkpoint_load(path, sparq_toy_mlp_params(m), NULL, NULL);
  if (s) {
    sparq_toy_mlp_free(m);
    return s;
  }
  *model = m;
  return SPARQ_OK;
}
