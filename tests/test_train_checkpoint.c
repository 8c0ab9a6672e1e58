/* Checkpoints: a save -> load round trip keeps every tensor bit-exact, the
 * file lists exactly the names saved, bad checkpoints fail with clear
 * messages, and a writer killed with SIGKILL mid-write never leaves a
 * broken checkpoint behind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sparq/train.h"

#define CKPT_DIR SPARQ_TEST_TMP "/train_ckpt"

typedef struct spec {
  const char *name;
  int ndim;
  int64_t shape[4];
} spec;

/* nanoGPT's names for a one-layer model (lm_head.weight is an alias). */
static const spec gpt[] = {
    {"transformer.wte.weight", 2, {65, 24}},
    {"transformer.wpe.weight", 2, {16, 24}},
    {"transformer.h.0.ln_1.weight", 1, {24}},
    {"transformer.h.0.attn.c_attn.weight", 2, {72, 24}},
    {"transformer.h.0.attn.c_proj.weight", 2, {24, 24}},
    {"transformer.h.0.mlp.c_fc.weight", 2, {96, 24}},
    {"transformer.h.0.mlp.c_proj.weight", 2, {24, 96}},
    {"transformer.ln_f.weight", 1, {24}},
};
#define GPT_COUNT (sizeof gpt / sizeof gpt[0])

static const sparq_ckpt_alias tied[] = {{"lm_head.weight", "transformer.wte.weight"}};

static void list_make(sparq_param_list *pl, const spec *s, size_t n) {
  memset(pl, 0, sizeof *pl);
  for (size_t i = 0; i < n; i++) assert_int_equal(sparq_params_add(pl, s[i].name, s[i].ndim, s[i].shape), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(pl), SPARQ_OK);
}

/* Random parameters and moments, with a few special bit patterns. */
static void fill_random(sparq_param_list *pl, sparq_adamw_state *a, uint64_t seed) {
  for (size_t i = 0; i < pl->count; i++) {
    const sparq_param *p = &pl->items[i];
    sparq_rng rng = sparq_rng_make(seed, i);
    sparq_rng_fill_normal(&rng, p->data, p->numel, 0.0f, 0.02f);
    if (a) {
      sparq_rng_fill_normal(&rng, a->exp_avg + p->offset, p->numel, 0.0f, 1e-3f);
      sparq_rng_fill_uniform(&rng, a->exp_avg_sq + p->offset, p->numel, 0.0f, 1e-6f);
    }
  }
  float *d = pl->items[1].data;
  const uint32_t bits[] = {0x7fc00123u /* NaN with a payload */, 0x80000000u /* -0 */, 0x00000001u /* denormal */,
                           0x7f800000u /* inf */};
  for (int i = 0; i < 4; i++) memcpy(&d[i], &bits[i], 4);
}

static void ckpt_dir_clean(void) {
  mkdir(SPARQ_TEST_TMP, 0777);
  mkdir(CKPT_DIR, 0777);
  DIR *dir = opendir(CKPT_DIR);
  assert_non_null(dir);
  struct dirent *e;
  char path[512];
  while ((e = readdir(dir))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", CKPT_DIR, e->d_name);
    unlink(path);
  }
  closedir(dir);
}

/* Files in CKPT_DIR whose name contains `part`. */
static int count_files(const char *part) {
  DIR *dir = opendir(CKPT_DIR);
  if (!dir) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)))
    if (strstr(e->d_name, part)) n++;
  closedir(dir);
  return n;
}

static void expect_error(sparq_status got, sparq_status want, const char *part) {
  if (got != want)
    fail_msg("status %s, expected %s (%s)", sparq_status_name(got), sparq_status_name(want), sparq_last_error());
  if (part && !strstr(sparq_last_error(), part)) fail_msg("message '%s' lacks '%s'", sparq_last_error(), part);
}

/* ---------------------------------------------------------- round trip */

static void round_trip_is_bit_exact(void **state) {
  (void)state;
  ckpt_dir_clean();
  const char *path = CKPT_DIR "/rt.safetensors";
  sparq_param_list pl, back;
  list_make(&pl, gpt, GPT_COUNT);
  list_make(&back, gpt, GPT_COUNT);
  sparq_adamw_state a, a2;
  assert_int_equal(sparq_adamw_init(&a, &pl), SPARQ_OK);
  assert_int_equal(sparq_adamw_init(&a2, &back), SPARQ_OK);
  fill_random(&pl, &a, 5);
  const sparq_metadata_entry meta[] = {{"step", "42"}, {"config", "{\"n_layer\": 1, \"n_embd\": 24}"}};
  assert_int_equal(sparq_checkpoint_save(path, &pl, &a, tied, 1, meta, 2), SPARQ_OK);
  assert_int_equal(count_files(".tmp"), 0);

  sparq_safetensors *st = NULL;
  assert_int_equal(sparq_checkpoint_load(path, &back, &a2, &st), SPARQ_OK);
  assert_non_null(st);
  for (size_t i = 0; i < GPT_COUNT; i++) {
    const sparq_param *p = &pl.items[i], *q = &back.items[i];
    assert_memory_equal(q->data, p->data, p->numel * sizeof(float));
    assert_memory_equal(a2.exp_avg + q->offset, a.exp_avg + p->offset, p->numel * sizeof(float));
    assert_memory_equal(a2.exp_avg_sq + q->offset, a.exp_avg_sq + p->offset, p->numel * sizeof(float));
  }
  /* the metadata, readable through the returned handle */
  assert_int_equal(st->metadata_count, 2);
  assert_string_equal(sparq_safetensors_metadata(st, "step"), "42");
  assert_string_equal(sparq_safetensors_metadata(st, "config"), meta[1].value);
  /* the alias is a copy of its target: same dtype, shape and bytes */
  const sparq_tensor *alias = sparq_safetensors_find(st, "lm_head.weight");
  const sparq_tensor *wte = sparq_safetensors_find(st, "transformer.wte.weight");
  assert_non_null(alias);
  assert_non_null(wte);
  assert_int_equal(alias->dtype, SPARQ_F32);
  assert_int_equal(alias->ndim, 2);
  assert_true(alias->shape[0] == 65 && alias->shape[1] == 24);
  assert_memory_equal(alias->data, pl.items[0].data, 65 * 24 * sizeof(float));
  assert_memory_equal(alias->data, wte->data, 65 * 24 * sizeof(float));
  sparq_safetensors_close(st);

  /* without moments in the request the same file loads the parameters only */
  memset(back.data, 0, back.numel * sizeof(float));
  assert_int_equal(sparq_checkpoint_load(path, &back, NULL, NULL), SPARQ_OK);
  assert_memory_equal(back.data, pl.data, pl.numel * sizeof(float));
  sparq_adamw_free(&a), sparq_adamw_free(&a2);
  sparq_params_free(&pl), sparq_params_free(&back);
}

/* The file lists exactly what was saved, in order: the parameters, the
 * aliases, then exp_avg and exp_avg_sq of every parameter. */
static void file_lists_the_saved_names(void **state) {
  (void)state;
  ckpt_dir_clean();
  const char *path = CKPT_DIR "/names.safetensors";
  sparq_param_list pl;
  list_make(&pl, gpt, GPT_COUNT);
  sparq_adamw_state a;
  assert_int_equal(sparq_adamw_init(&a, &pl), SPARQ_OK);
  fill_random(&pl, &a, 6);
  for (int with_adam = 0; with_adam < 2; with_adam++) {
    assert_int_equal(sparq_checkpoint_save(path, &pl, with_adam ? &a : NULL, tied, 1, NULL, 0), SPARQ_OK);
    char want[3 * GPT_COUNT + 1][160];
    size_t n = 0;
    for (size_t i = 0; i < GPT_COUNT; i++) snprintf(want[n++], 160, "%s", gpt[i].name);
    snprintf(want[n++], 160, "lm_head.weight");
    for (size_t i = 0; with_adam && i < GPT_COUNT; i++) snprintf(want[n++], 160, "optimizer.exp_avg.%s", gpt[i].name);
    for (size_t i = 0; with_adam && i < GPT_COUNT; i++)
      snprintf(want[n++], 160, "optimizer.exp_avg_sq.%s", gpt[i].name);
    sparq_safetensors *st;
    assert_int_equal(sparq_safetensors_open(path, &st), SPARQ_OK);
    assert_int_equal(st->count, n);
    assert_int_equal(st->metadata_count, 0);
    for (size_t i = 0; i < n; i++) {
      assert_string_equal(st->names[i], want[i]);
      assert_int_equal(st->tensors[i].dtype, SPARQ_F32);
    }
    sparq_safetensors_close(st);
    /* and it loads back through the same names */
    assert_int_equal(sparq_checkpoint_load(path, &pl, with_adam ? &a : NULL, NULL), SPARQ_OK);
  }
  sparq_adamw_free(&a);
  sparq_params_free(&pl);
}

/* F16, BF16 and F64 tensors (as a PyTorch checkpoint may hold) become FP32;
 * tensors the model does not know are ignored. */
static void other_float_dtypes_are_converted(void **state) {
  (void)state;
  ckpt_dir_clean();
  const char *path = CKPT_DIR "/dtypes.safetensors";
  static const spec s[] = {{"h", 1, {4}}, {"b", 2, {2, 2}}, {"d", 1, {3}}, {"f", 1, {2}}};
  const uint16_t h[4] = {0x3c00 /* 1 */, 0xc000 /* -2 */, 0x3800 /* 0.5 */, 0x0000};
  const uint16_t b[4] = {0x3f80 /* 1 */, 0x4040 /* 3 */, 0xbe80 /* -0.25 */, 0x7f80 /* inf */};
  const double d[3] = {1.0 / 3.0, -1e300, 1e-3};
  const float f[2] = {7.5f, -0.0f};
  const int32_t junk[2] = {1, 2};
  sparq_named_tensor t[5];
  memset(t, 0, sizeof t);
  t[0].name = "h", t[0].tensor = (sparq_tensor){.data = (void *)h, .dtype = SPARQ_F16, .ndim = 1, .shape = {4}};
  t[1].name = "b", t[1].tensor = (sparq_tensor){.data = (void *)b, .dtype = SPARQ_BF16, .ndim = 2, .shape = {2, 2}};
  t[2].name = "d", t[2].tensor = (sparq_tensor){.data = (void *)d, .dtype = SPARQ_F64, .ndim = 1, .shape = {3}};
  t[3].name = "f", t[3].tensor = (sparq_tensor){.data = (void *)f, .dtype = SPARQ_F32, .ndim = 1, .shape = {2}};
  t[4].name = "unknown.buffer", t[4].tensor = (sparq_tensor){.data = (void *)junk, .dtype = SPARQ_I32, .ndim = 1, .shape = {2}};
  assert_int_equal(sparq_safetensors_write(path, t, 5, NULL, 0), SPARQ_OK);
  sparq_param_list pl;
  list_make(&pl, s, 4);
  assert_int_equal(sparq_checkpoint_load(path, &pl, NULL, NULL), SPARQ_OK);
  const float *H = pl.items[0].data, *B = pl.items[1].data, *D = pl.items[2].data, *F = pl.items[3].data;
  assert_true(H[0] == 1.0f && H[1] == -2.0f && H[2] == 0.5f && H[3] == 0.0f);
  assert_true(B[0] == 1.0f && B[1] == 3.0f && B[2] == -0.25f && isinf(B[3]) && B[3] > 0);
  assert_true(D[0] == (float)(1.0 / 3.0) && isinf(D[1]) && D[1] < 0 && D[2] == 1e-3f);
  assert_true(F[0] == 7.5f && F[1] == 0.0f && signbit(F[1]));

  /* an integer tensor under a parameter's name is refused */
  t[3].tensor = (sparq_tensor){.data = (void *)junk, .dtype = SPARQ_I32, .ndim = 1, .shape = {2}};
  assert_int_equal(sparq_safetensors_write(path, t, 4, NULL, 0), SPARQ_OK);
  expect_error(sparq_checkpoint_load(path, &pl, NULL, NULL), SPARQ_ERR_FORMAT, "tensor 'f' has dtype I32");
  sparq_params_free(&pl);
}

/* -------------------------------------------------------- bad checkpoints */

static void wrong_shape_missing_tensor_missing_moments(void **state) {
  (void)state;
  ckpt_dir_clean();
  const char *path = CKPT_DIR "/bad.safetensors";
  static const spec saved[] = {{"w", 2, {4, 6}}, {"b", 1, {6}}};
  sparq_param_list pl;
  list_make(&pl, saved, 2);
  fill_random(&pl, NULL, 8);
  assert_int_equal(sparq_checkpoint_save(path, &pl, NULL, NULL, 0, NULL, 0), SPARQ_OK);

  /* transposed weight */
  static const spec transposed[] = {{"w", 2, {6, 4}}, {"b", 1, {6}}};
  sparq_param_list other;
  list_make(&other, transposed, 2);
  for (size_t i = 0; i < other.numel; i++) other.data[i] = 1.5f;
  sparq_safetensors *st = (sparq_safetensors *)&other; /* must come back NULL */
  expect_error(sparq_checkpoint_load(path, &other, NULL, &st), SPARQ_ERR_FORMAT,
               CKPT_DIR "/bad.safetensors: tensor 'w' has shape [4, 6], the model expects [6, 4]");
  assert_null(st);
  for (size_t i = 0; i < other.items[1].numel; i++) assert_true(other.items[1].data[i] == 1.5f); /* untouched */
  sparq_params_free(&other);

  /* different rank */
  static const spec flat[] = {{"w", 1, {24}}, {"b", 1, {6}}};
  list_make(&other, flat, 2);
  expect_error(sparq_checkpoint_load(path, &other, NULL, NULL), SPARQ_ERR_FORMAT,
               "tensor 'w' has shape [4, 6], the model expects [24]");
  sparq_params_free(&other);

  /* a parameter the file lacks */
  static const spec more[] = {{"w", 2, {4, 6}}, {"b", 1, {6}}, {"extra.weight", 2, {2, 2}}};
  list_make(&other, more, 3);
  expect_error(sparq_checkpoint_load(path, &other, NULL, NULL), SPARQ_ERR_NOT_FOUND, "'extra.weight'");
  assert_non_null(strstr(sparq_last_error(), path));
  sparq_params_free(&other);

  /* moments asked for but not saved */
  sparq_adamw_state a;
  assert_int_equal(sparq_adamw_init(&a, &pl), SPARQ_OK);
  expect_error(sparq_checkpoint_load(path, &pl, &a, NULL), SPARQ_ERR_NOT_FOUND, "'optimizer.exp_avg.w'");
  assert_non_null(strstr(sparq_last_error(), "AdamW moments"));

  /* missing file, garbage file */
  expect_error(sparq_checkpoint_load(CKPT_DIR "/none.safetensors", &pl, NULL, NULL), SPARQ_ERR_NOT_FOUND,
               CKPT_DIR "/none.safetensors");
  FILE *f = fopen(CKPT_DIR "/junk.safetensors", "wb");
  assert_non_null(f);
  fputs("this is not a checkpoint, just some text that is long enough", f);
  fclose(f);
  sparq_status s = sparq_checkpoint_load(CKPT_DIR "/junk.safetensors", &pl, NULL, NULL);
  assert_int_not_equal(s, SPARQ_OK);
  assert_non_null(strstr(sparq_last_error(), "junk.safetensors"));
  sparq_adamw_free(&a);
  sparq_params_free(&pl);
}

static void bad_arguments(void **state) {
  (void)state;
  ckpt_dir_clean();
  const char *path = CKPT_DIR "/args.safetensors";
  sparq_param_list pl, other;
  list_make(&pl, gpt, 3);
  list_make(&other, gpt, 4);
  sparq_adamw_state a;
  assert_int_equal(sparq_adamw_init(&a, &other), SPARQ_OK);
  expect_error(sparq_checkpoint_save(NULL, &pl, NULL, NULL, 0, NULL, 0), SPARQ_ERR_ARG, "sparq_checkpoint_save");
  expect_error(sparq_checkpoint_save(path, NULL, NULL, NULL, 0, NULL, 0), SPARQ_ERR_ARG, "sparq_checkpoint_save");
  expect_error(sparq_checkpoint_save(path, &pl, &a, NULL, 0, NULL, 0), SPARQ_ERR_ARG, "AdamW state");
  expect_error(sparq_checkpoint_load(path, &pl, &a, NULL), SPARQ_ERR_ARG, "AdamW state");
  expect_error(sparq_checkpoint_save(path, &pl, NULL, NULL, 1, NULL, 0), SPARQ_ERR_ARG, "aliases");
  const sparq_ckpt_alias dangling[] = {{"lm_head.weight", "no.such.weight"}};
  expect_error(sparq_checkpoint_save(path, &pl, NULL, dangling, 1, NULL, 0), SPARQ_ERR_ARG, "'no.such.weight'");
  const sparq_ckpt_alias clash[] = {{"transformer.wpe.weight", "transformer.wte.weight"}};
  expect_error(sparq_checkpoint_save(path, &pl, NULL, clash, 1, NULL, 0), SPARQ_ERR_ARG, "transformer.wpe.weight");
  const sparq_metadata_entry dup[] = {{"k", "1"}, {"k", "2"}};
  expect_error(sparq_checkpoint_save(path, &pl, NULL, NULL, 0, dup, 2), SPARQ_ERR_ARG, "'k'");
  expect_error(sparq_checkpoint_save(CKPT_DIR "/no/such/dir/x.safetensors", &pl, NULL, NULL, 0, NULL, 0),
               SPARQ_ERR_NOT_FOUND, "no/such/dir");
  assert_int_equal(access(path, F_OK), -1); /* nothing was written */
  assert_int_equal(count_files(".tmp"), 0);

  /* the longest names a list accepts still get their moment names */
  char longname[SPARQ_PARAM_NAME_MAX];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  sparq_param_list lng = {0};
  const int64_t shape[1] = {3};
  assert_int_equal(sparq_params_add(&lng, longname, 1, shape), SPARQ_OK);
  assert_int_equal(sparq_params_allocate(&lng), SPARQ_OK);
  sparq_adamw_state la;
  assert_int_equal(sparq_adamw_init(&la, &lng), SPARQ_OK);
  la.exp_avg_sq[1] = 2.5f;
  assert_int_equal(sparq_checkpoint_save(path, &lng, &la, NULL, 0, NULL, 0), SPARQ_OK);
  la.exp_avg_sq[1] = 0.0f;
  assert_int_equal(sparq_checkpoint_load(path, &lng, &la, NULL), SPARQ_OK);
  assert_true(la.exp_avg_sq[1] == 2.5f);
  /* a corrupted (unterminated) name is refused, not overrun */
  memset(lng.items[0].name, 'y', SPARQ_PARAM_NAME_MAX);
  expect_error(sparq_checkpoint_save(path, &lng, &la, NULL, 0, NULL, 0), SPARQ_ERR_ARG, "unterminated");
  expect_error(sparq_checkpoint_load(path, &lng, &la, NULL), SPARQ_ERR_ARG, "unterminated");
  sparq_adamw_free(&la);
  sparq_params_free(&lng);
  sparq_adamw_free(&a);
  sparq_params_free(&pl), sparq_params_free(&other);
}

/* ------------------------------------------------------------- kill -9 */

/* About 8.4M floats of parameters: with both moments a ~100 MB file. */
static const spec big[] = {
    {"a.weight", 2, {2048, 1024}}, {"a.bias", 1, {1000}}, {"b.weight", 2, {4096, 1024}}, {"c.weight", 3, {10, 200, 1001}},
};
#define BIG_COUNT (sizeof big / sizeof big[0])

/* Version v: every parameter v, exp_avg v + 0.25, exp_avg_sq v + 0.5 (plain
 * loops: the forked child must not start OpenMP). */
static void fill_version(sparq_param_list *pl, sparq_adamw_state *a, float v) {
  for (size_t i = 0; i < pl->numel; i++) pl->data[i] = v, a->exp_avg[i] = v + 0.25f, a->exp_avg_sq[i] = v + 0.5f;
}

/* The version the whole checkpoint holds, or -1 if any tensor disagrees. */
static float loaded_version(sparq_param_list *pl, sparq_adamw_state *a) {
  const float v = pl->items[0].data[0];
  for (size_t k = 0; k < pl->count; k++) {
    const sparq_param *p = &pl->items[k];
    for (size_t i = 0; i < p->numel; i++) {
      const size_t j = p->offset + i;
      if (pl->data[j] != v || a->exp_avg[j] != v + 0.25f || a->exp_avg_sq[j] != v + 0.5f) return -1.0f;
    }
  }
  return v;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* Waits up to timeout_ms for the child to report a finished save; returns
 * the number of versions read (the last one in *last). */
static int read_versions(int fd, int timeout_ms, int *last) {
  int n = 0, v;
  struct pollfd pfd = {fd, POLLIN, 0};
  while (poll(&pfd, 1, timeout_ms) > 0 && (pfd.revents & POLLIN) && read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
    *last = v;
    n++;
    timeout_ms = 0; /* drain what is there, do not wait for more */
  }
  return n;
}

static void killed_writer_leaves_a_valid_checkpoint(void **state) {
  (void)state;
  ckpt_dir_clean();
  const char *path = CKPT_DIR "/ckpt.safetensors";
  sparq_param_list pl;
  list_make(&pl, big, BIG_COUNT);
  sparq_adamw_state a;
  assert_int_equal(sparq_adamw_init(&a, &pl), SPARQ_OK);
  fill_version(&pl, &a, 0.0f); /* checkpoint A */
  assert_int_equal(sparq_checkpoint_save(path, &pl, &a, NULL, 0, NULL, 0), SPARQ_OK);

  /* kill after a fixed delay (mid-write or mid-fsync, depending on the
   * disk), and once right after the child reported a completed save so
   * that a later version must be the one on disk */
  static const int delay_ms[] = {20, 60, 110, 160, 200, -1, -25};
  float prev = 0.0f;
  int later_seen = 0;
  for (int round = 0; round < (int)(sizeof delay_ms / sizeof delay_ms[0]); round++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      for (int v = 1000 * (round + 1) + 1;; v++) {
        fill_version(&pl, &a, (float)v);
        if (sparq_checkpoint_save(path, &pl, &a, NULL, 0, NULL, 0) != SPARQ_OK) _exit(3);
        if (write(fds[1], &v, sizeof v) != (ssize_t)sizeof v) _exit(4);
      }
    }
    close(fds[1]);
    int last = 0, done = 0;
    if (delay_ms[round] >= 0) {
      sleep_ms(delay_ms[round]);
    } else {
      done = read_versions(fds[0], 20000, &last); /* the first completed save */
      assert_true(done > 0);
      sleep_ms(-delay_ms[round]);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) fail_msg("round %d: writer ended with status %d", round, status);
    done += read_versions(fds[0], 0, &last);
    close(fds[0]);

    /* the path holds one whole version: the one before this round, or the
     * last completed save of the child, or the one it was committing */
    memset(pl.data, 0xff, pl.numel * sizeof(float));
    if (sparq_checkpoint_load(path, &pl, &a, NULL) != SPARQ_OK) fail_msg("round %d: %s", round, sparq_last_error());
    const float v = loaded_version(&pl, &a);
    const float first = (float)(1000 * (round + 1) + 1);
    bool ok = done ? (v == (float)last || v == (float)last + 1) : (v == prev || v == first);
    if (!ok) fail_msg("round %d: loaded version %g (before %g, %d saves done, last %d)", round, v, prev, done, last);
    if (v != prev) later_seen++;
    prev = v;
  }
  assert_true(later_seen > 0);

  /* leftover temporary files of the killed writers do not stop a new save */
  const int leftovers = count_files(".tmp");
  fill_version(&pl, &a, 7.0f);
  assert_int_equal(sparq_checkpoint_save(path, &pl, &a, NULL, 0, NULL, 0), SPARQ_OK);
  fill_version(&pl, &a, -1.0f);
  assert_int_equal(sparq_checkpoint_load(path, &pl, &a, NULL), SPARQ_OK);
  assert_true(loaded_version(&pl, &a) == 7.0f);
  assert_int_equal(count_files(".tmp"), leftovers); /* this save left none of its own */
  printf("kill test: %d of %d kills left a newer checkpoint, %d temporary files left over\n", later_seen,
         (int)(sizeof delay_ms / sizeof delay_ms[0]), leftovers);
  ckpt_dir_clean();
  sparq_adamw_free(&a);
  sparq_params_free(&pl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(killed_writer_leaves_a_valid_checkpoint),
      cmocka_unit_test(round_trip_is_bit_exact),
      cmocka_unit_test(file_lists_the_saved_names),
      cmocka_unit_test(other_float_dtypes_are_converted),
      cmocka_unit_test(wrong_shape_missing_tensor_missing_moments),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
