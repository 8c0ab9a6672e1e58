/* Shared pieces of the sparq command: option parsing and the command table.
 * Exit codes: 0 success, 1 a runtime or file error (one line on stderr),
 * 2 a usage error (usage text on stderr). */
#ifndef SPARQ_CLI_H
#define SPARQ_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sparq/vnm.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef enum cli_opt_kind {
  CLI_BOOL,   /* --name, no value; dst is bool* */
  CLI_INT,    /* dst is int64_t*; min/max bound the value */
  CLI_DOUBLE, /* dst is double*; min/max bound the value */
  CLI_STRING, /* dst is const char** */
  CLI_CHOICE  /* dst is const char**; value must be one of `choices` ("a|b|c") */
} cli_opt_kind;

typedef struct cli_opt {
  const char *name; /* without the leading "--" */
  cli_opt_kind kind;
  void *dst;
  double min, max;     /* CLI_INT / CLI_DOUBLE bounds, inclusive */
  const char *choices; /* CLI_CHOICE */
} cli_opt;

/* Parses argv[first..argc) into the options and up to max_positional
 * positional arguments. Accepts "--name value" and "--name=value"; "--" ends
 * the options. On error prints "sparq CMD: what" plus the usage of `command`
 * and returns CLI_USAGE. */
int cli_parse(const char *command, int argc, char **argv, int first, const cli_opt *opts, int nopts,
              const char **positional, int max_positional, int *npositional);

/* Prints "sparq COMMAND: <printf message>" and the command's usage on
 * stderr; returns CLI_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Marks in want[count] the names[] listed in the comma list `list` (each one
 * must be one of them); a usage error naming --runs otherwise. */
int cli_pick_runs(const char *command, const char *list, const char *const *names, int count, bool *want);
/* Prints "sparq: <message>" (the library's last error) on stderr; returns CLI_FAIL. */
int cli_fail_last_error(void);
/* Prints "sparq: <printf message>" on stderr; returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the usage of one command on `stderr` (or stdout when to_stdout). */
void cli_usage(const char *command, bool to_stdout);
/* Creates a directory and its parents (mkdir -p); 0 on success, prints on failure. */
int cli_mkdirs(const char *path);

typedef struct cli_command {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command name */
  const char *summary;
  const char *usage; /* full help text */
} cli_command;

const cli_command *cli_find(const char *name);
extern const cli_command cli_commands[];
extern const int cli_command_count;

int cli_inspect(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_attn(int argc, char **argv);
/* sparq attn --variant svg (cli_attn_svg.c). */
int cli_attn_svg(int argc, char **argv);
int cli_signgd(int argc, char **argv);
/* sparq gft-toy: the 2-D toy arms of spec gft.md 8.1 (cli_gft_toy.c). */
int cli_gft_toy(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_vnm_matmul(int argc, char **argv);
int cli_train(int argc, char **argv);
/* argv[1] is "classifier" (cli_train_classifier.c). */
int cli_train_classifier(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_plot(int argc, char **argv);
/* argv[0] is "train". */
int cli_bench_train(int argc, char **argv);
/* argv[0] is "svg". */
int cli_bench_svg(int argc, char **argv);
/* spec remoe.md section 8's protocol and the MoE throughput (cli_bench_remoe.c). */
int cli_bench_remoe(int argc, char **argv);
/* spec coat-fp8.md section 8's protocol, one child process per run (cli_bench_coat.c). */
int cli_bench_coat(int argc, char **argv);
/* one optimizer step of FP32 AdamW, plain FP8 and DRE FP8, interleaved (cli_bench_optim.c). */
int cli_bench_optim(int argc, char **argv);

/* Byte-level LM training (cli_train.c); the demo and bench train reuse it. */
typedef struct cli_lm_flags {
  const char *data, *optim, *bias, *out;
  const char *init; /* --init CKPT: a GFT run starts from a conditional checkpoint */
  int64_t layers, heads, dim, seq, batch, steps, stop_at, warmup, accum, eval_every, eval_batches, ckpt_every,
      seed;
  double lr, min_lr, wd, clip, beta1, beta2, eps, momentum;
  double p_uncond;  /* label dropout of --cond and --gft */
  bool resume;
  bool cond, gft;   /* class-conditional (CFG baseline) / Guidance-Free Training on the fortunes classes */
  /* mixture of experts (spec remoe.md): --moe relu|topk (NULL: dense), --experts, --topk,
   * --moe-layers all|LIST, --l1 lb|plain, --lambda0, --alpha, --aux */
  const char *moe, *moe_layers, *l1;
  int64_t experts, topk;
  double lambda0, alpha, aux;
  /* COAT (spec coat-fp8.md): --optim adamw-fp8|adamw-fp8-nodre with --fp8-m/--fp8-v e4m3|e5m2 and
   * --fp8-shadow; --fp8-act keeps the activations saved for backward in FP8 */
  const char *fp8_m, *fp8_v;
  bool fp8_act, fp8_shadow;
} cli_lm_flags;
cli_lm_flags cli_lm_flags_default(void);
/* Loads "fortunes" (or NULL) or a file path as a byte corpus; prints the error. */
struct sparq_text_corpus;
int cli_load_text(const char *data, struct sparq_text_corpus *out);
struct sparq_train_result;
/* Runs `sparq train lm` with these flags; quiet drops the progress and summary lines. */
int cli_train_lm_run(const cli_lm_flags *f, struct sparq_train_result *result, bool quiet);
/* From an MoE run's RUN_DIR/moe_bytes.tsv: the mean active experts of the 8
 * most frequent bytes and of the bytes under 0.1 % of the tokens, with
 * their shares of the tokens; prints the error. */
int cli_moe_byte_summary(const char *run_dir, double *top, double *top_share, double *rare, double *rare_share);
/* Loads a GPT from a sparq checkpoint (config from its metadata); prints the error. */
struct sparq_gpt;
int cli_load_gpt(const char *path, struct sparq_gpt **out);
/* Writes a gnuplot loss curve of a training log; prints the error. */
int cli_plot_log(const char *log_path, const char *png_path);
/* Writes s as a gnuplot single-quoted string (' doubled). */
void cli_gnuplot_quote(FILE *f, const char *s);
/* Opens a plot's input DATA_PATH for reading (*in) and creates its gnuplot
 * script PNG_PATH.gp (*script, *gp); the caller closes and frees all three.
 * On failure prints the error and leaves nothing open. */
int cli_plot_open(const char *data_path, const char *png_path, FILE **in, char **script, FILE **gp);
/* Runs `gnuplot SCRIPT`; a clear error when gnuplot is missing or fails. */
int cli_run_gnuplot(const char *script);
/* Whether a JSONL file holds `eval fd --json` rows (a "fd" and "acc" per
 * model point) rather than a training log. */
bool cli_is_fd_sweep(const char *path);
/* FD against accuracy, one curve per checkpoint, points labelled by beta. */
int cli_plot_fd(const char *sweep_path, const char *png_path);
/* MoE training logs (train lm --moe; cli_plot_moe.c): sparsity and lambda
 * against steps, and the LM loss. */
bool cli_is_moe_log(const char *path);
int cli_plot_moe(const char *log_path, const char *png_path);
/* The demo's LM step: trains into OUT/lm, samples, plots. */
int cli_demo_lm(const char *out);
/* The demo's diffusion step: the shipped DiT samples a grid into OUT/dit, then its FD line. */
int cli_demo_dit(const char *out);

/* Used by demo to call other commands' work without re-parsing. */
int cli_data_grid(const char *split, int64_t n, const char *out_png);
/* The benchmarks print to stdout and, when jsonl is not NULL, append one JSON line each. */
int cli_bench_peak(FILE *jsonl);
int cli_bench_gemm(int64_t size, int64_t reps, FILE *jsonl);
/* argv[0] is "attn"; rows also go to jsonl when it is not NULL. */
int cli_bench_attn(int argc, char **argv, FILE *jsonl);
/* The demo's short attention table (one shape, the main variants). */
int cli_demo_attn(FILE *jsonl);

/* V:N:M sparsity (cli_prune.c, cli_vnm_matmul.c, cli_bench_vnm.c). */
typedef struct cli_vnm_timing {
  double dense_ms, sparse_ms;          /* best of the interleaved runs */
  double dense_gflops, useful_gflops;  /* useful = 2/M of the dense FLOPs */
  double speedup;                      /* dense_ms / sparse_ms */
} cli_vnm_timing;
/* argv[0] is "vnm". */
int cli_bench_vnm(int argc, char **argv);
/* Times sparq_sgemm on a random rows x cols layer and sparq_vnm_gemm on it
 * pruned to p, interleaved, best of reps after 2 warm-ups. */
int cli_bench_vnm_row(int64_t rows, int64_t cols, int64_t tokens, sparq_vnm_pattern p, int reps, cli_vnm_timing *out);
void cli_bench_vnm_header(FILE *f, int reps);
void cli_bench_vnm_print(FILE *f, bool json, int64_t rows, int64_t cols, int64_t tokens, sparq_vnm_pattern p,
                         const cli_vnm_timing *t);
/* Reads a 2-D matrix from .npy or safetensors (tensor NULL: the only 2-D
 * one) as new float rows x cols in *out; name (may be NULL) gets the tensor
 * name or "weight". Prints the error and returns CLI_FAIL on failure. */
int cli_load_matrix(const char *path, const char *tensor, float **out, int64_t shape[2], char *name,
                    size_t name_size);
/* The demo's V:N:M step: prune a random layer into dir, show its bench row. */
int cli_demo_vnm(const char *dir, FILE *jsonl);

/* Diffusion (cli_train_dit.c, cli_sample.c, cli_eval_fd.c). */
typedef struct cli_dit_flags {
  const char *data, *data_dir, *schedule, *pred, *out, *guidance, *init;
  int64_t patch, dim, depth, heads, steps, stop_at, batch, warmup, eval_every, eval_batches, ckpt_every, seed;
  double lr, min_lr, wd, clip, ema, p_uncond;
  bool resume;
} cli_dit_flags;
cli_dit_flags cli_dit_flags_default(void);
/* argv[1] is "dit". */
int cli_train_dit(int argc, char **argv);
/* Runs `sparq train dit` on Fashion-MNIST; quiet drops the progress and summary lines. */
int cli_train_dit_run(const cli_dit_flags *f, struct sparq_train_result *result, bool quiet);
/* `sparq train dit --data toy2d`: the 2-D toy's MLP denoiser. */
int cli_train_toy2d(const cli_dit_flags *f);
int cli_sample(int argc, char **argv);
/* argv[1] is "fd". */
int cli_eval_fd(int argc, char **argv);
int cli_export(int argc, char **argv);
/* Sampling flags shared by `sparq sample` and `sparq eval fd`. */
typedef struct cli_sample_flags {
  const char *ckpt, *sampler, *cls, *attn;
  int64_t steps, n, seed, chunk;
  double cfg, eta;
  double beta; /* GFT's sampling temperature (0: 1 / cfg) */
  bool raw; /* the raw weights, not the EMA ones, of a training checkpoint */
  bool gft; /* set from the checkpoint: the model samples with gft_beta, one NFE per step */
} cli_sample_flags;
/* What cli_load_dit found in a checkpoint. */
typedef struct cli_dit_info {
  bool used_ema; /* the EMA weights were loaded */
  bool gft;      /* trained with guidance-free training ("guidance" = "gft") */
} cli_dit_info;
cli_sample_flags cli_sample_flags_default(void);
/* The options both commands share (ckpt, sampler, steps, eta, seed, attn,
 * raw) into opts[0..CLI_SAMPLE_OPTS); returns how many. `sample` adds its one
 * --beta, `eval fd` its --beta sweep. */
#define CLI_SAMPLE_OPTS 7
int cli_sample_opts(cli_sample_flags *f, cli_opt *opts);
struct sparq_dit;
struct sparq_diffusion;
struct sparq_sample_stats;
/* Loads a DiT (its EMA weights when the file has them, unless raw) and its
 * diffusion formulation from a checkpoint; info (may be NULL) says what was
 * found. Prints the error. */
int cli_load_dit(const char *path, bool raw, struct sparq_dit **out, struct sparq_diffusion *diff, cli_dit_info *info);
/* n samples x [n, C*H*W] with labels (fixed_class, or cycling through the
 * classes when < 0) from seed-determined noise; gif_path (may be NULL) gets
 * the trajectory of the first 16. Prints the error. */
int cli_dit_sample(struct sparq_dit *dit, const struct sparq_diffusion *diff, const cli_sample_flags *f,
                   int32_t fixed_class, int64_t n, float *x, int32_t *labels, const char *gif_path,
                   struct sparq_sample_stats *stats);

#endif
