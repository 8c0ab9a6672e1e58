/* The SignGD training-dynamics study (spec shared/spec/signgd.md; Li et al.,
 * "On the Optimization and Generalization of Two-layer Transformers with
 * Sign Gradient Descent", ICLR 2025): the synthetic data model, the two-layer
 * softmax-attention model with hand-written gradients, three full-batch
 * optimizers (SignGD, Adam, GD), the per-step quantities of the paper's four
 * stages, and the spec's CPU reproduction protocol.
 *
 * Everything here is FP64: the problem is small (d = 2000, n = 32, m = 8), and
 * double keeps the finite-difference checks and the "step of exactly eta"
 * invariants meaningful. Coordinates are 0-based: the spec's coordinate 1
 * (the signal direction e_1) is coordinate 0 here, its noise coordinates
 * {2..d} are 1..d-1 here.
 *
 * Model, for one sample X = [x_0, x_1] (two patches in R^d):
 *   q_l = W_Q x_l, k_p = W_K x_p          (m_k-vectors)
 *   S[l][p] = softmax_p(<q_l, k_p>)       (no 1/sqrt(m_k) temperature)
 *   v = mean of the rows of W_{V,+1} - mean of the rows of W_{V,-1}
 *   f(X) = sum_l sum_p S[l][p] <v, x_p>
 * Loss: logistic, L = (1/n) sum_i log(1 + exp(-y_i f(X_i))).
 *
 * All functions are deterministic: a seed fixes every random draw (Philox,
 * see base.h), and nothing depends on the thread count. */
#ifndef SPARQ_SIGNGD_H
#define SPARQ_SIGNGD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparq/base.h"
#include "sparq/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ data */

/* n samples of the spec's data model. Sample i has a signal patch y_i * mu,
 * mu = mu_norm * e_0, and a noise patch xi_i with exactly s nonzeros, all in
 * coordinates 1..d-1 (never the signal coordinate). Both patches are stored
 * sparsely. All arrays are owned (sparq_alloc); free with
 * sparq_signgd_data_free. */
typedef struct sparq_signgd_data {
  int64_t n;           /* samples */
  int64_t d;           /* patch dimension, >= 2 */
  int64_t s;           /* nonzeros per noise patch, 1..d-1 */
  double mu_norm;      /* ||mu|| >= 0 */
  int8_t *y;           /* [n] labels, +1 or -1 */
  uint8_t *signal_pos; /* [n] which patch (0 or 1) holds y_i * mu; the other holds xi_i */
  int32_t *noise_idx;  /* [n][s] coordinates of xi_i, strictly ascending, in 1..d-1 */
  double *noise_val;   /* [n][s] the values of xi_i at those coordinates */
} sparq_signgd_data;

/* Allocates a data set with every array zeroed (labels 0, so not yet valid),
 * for callers that fill it themselves (tests build disjoint noise supports
 * this way). d < 2^31. Fails with SPARQ_ERR_ARG on bad sizes, SPARQ_ERR_NOMEM
 * when out of memory; on failure *out is zeroed. */
sparq_status sparq_signgd_data_alloc(sparq_signgd_data *out, int64_t n, int64_t d, int64_t s, double mu_norm);

/* Draws n samples: y uniform in {+1, -1}; the s noise coordinates uniformly
 * without replacement from 1..d-1 (Floyd's algorithm, then sorted), each
 * value from N(0, sigma_p^2) (a draw of exactly 0 is redrawn, so the patch is
 * exactly s-sparse). The signal sits in patch 0, or in a uniformly random
 * patch when random_position. Draws come from `rng` in sample order; the
 * positions are drawn after all samples, so both settings share labels and
 * noise. */
sparq_status sparq_signgd_data_sample(sparq_signgd_data *out, int64_t n, int64_t d, int64_t s, double mu_norm,
                                      double sigma_p, bool random_position, sparq_rng *rng);

/* Checks the invariants above (labels +-1, positions 0/1, indices ascending
 * and in 1..d-1, values finite); SPARQ_ERR_ARG names the first violation. */
sparq_status sparq_signgd_data_check(const sparq_signgd_data *data);

/* Writes patch p (0 or 1) of sample i as a dense vector out[0..d). */
sparq_status sparq_signgd_data_patch(const sparq_signgd_data *data, int64_t i, int p, double *out);

/* Frees the arrays and zeroes *data; safe on a zeroed struct and twice. */
void sparq_signgd_data_free(sparq_signgd_data *data);

/* ----------------------------------------------------------------- model */

/* The four trainable matrices in one owned block, in this order, each
 * row-major: W_Q [m_k][d], W_K [m_k][d], W_{V,+1} [m_v][d], W_{V,-1} [m_v][d].
 * wq, wk, wv_pos and wv_neg point into `params`; a gradient buffer has the
 * same layout and `count` entries. */
typedef struct sparq_signgd_model {
  int64_t d, m_k, m_v;
  size_t count; /* 2 * (m_k + m_v) * d */
  double *params;
  double *wq, *wk, *wv_pos, *wv_neg;
} sparq_signgd_model;

/* Allocates the model and draws every entry i.i.d. from N(0, sigma0^2), in
 * the order of `params`. sigma0 >= 0. On failure *m is zeroed. */
sparq_status sparq_signgd_model_init(sparq_signgd_model *m, int64_t d, int64_t m_k, int64_t m_v, double sigma0,
                                     sparq_rng *rng);

/* Frees the block and zeroes *m; safe on a zeroed struct and twice. */
void sparq_signgd_model_free(sparq_signgd_model *m);

/* v = mean row of W_{V,+1} - mean row of W_{V,-1}, into v[0..d). */
void sparq_signgd_value_direction(const sparq_signgd_model *m, double *v);

/* Output f(X_i) of sample i and its attention, scores[2*l + p] = S[l][p]
 * (query patch l, key patch p, in storage order; each row sums to 1).
 * scores may be NULL. m->d must equal data->d. */
sparq_status sparq_signgd_forward(const sparq_signgd_model *m, const sparq_signgd_data *data, int64_t i, double *f,
                                  double scores[4]);

/* Over the whole data set: mean logistic loss (*loss), the fraction of
 * samples with y_i f(X_i) <= 0 (*error), and, when grad is not NULL, the
 * exact gradient of the mean loss w.r.t. every parameter, written (not
 * accumulated) into grad[0..m->count) in the layout of `params`. loss and
 * error may be NULL. Every row of W_{V,j} receives the same gradient
 * j * (1/m_v) * dL/dv, bit for bit. */
sparq_status sparq_signgd_loss(const sparq_signgd_model *m, const sparq_signgd_data *data, double *loss,
                               double *error, double *grad);

/* ------------------------------------------------------------- optimizers */

typedef enum sparq_signgd_optim {
  SPARQ_SIGNGD_OPT_SIGN = 0, /* SignGD: w -= lr * sign(g), sign(0) = 0 */
  SPARQ_SIGNGD_OPT_ADAM = 1, /* Adam with bias correction */
  SPARQ_SIGNGD_OPT_GD = 2,   /* gradient descent: w -= lr * g */
} sparq_signgd_optim;

/* "signgd", "adam", "gd". */
const char *sparq_signgd_optim_name(sparq_signgd_optim optim);
/* Parses those names; false if unknown. */
bool sparq_signgd_optim_from_name(const char *name, sparq_signgd_optim *out);

/* Full-batch optimizer state over `count` parameters.
 * Adam keeps the bias-corrected moments m_hat, v_hat directly, as
 *   m_hat_t = m_hat_{t-1} + (g - m_hat_{t-1}) * (1 - beta1) / (1 - beta1^t)
 * (algebraically the same as m_t / (1 - beta1^t) of the usual recursion), and
 * steps w -= lr * m_hat / (sqrt(v_hat) + eps). At t = 1 the factor is exactly
 * 1, so m_hat = g and sqrt(v_hat) = |g| in floating point too: with eps = 0
 * the first Adam step equals the SignGD step bit for bit. An entry whose
 * denominator is 0 (g = 0 so far with eps = 0) moves 0. */
typedef struct sparq_signgd_optimizer {
  sparq_signgd_optim kind;
  double lr, beta1, beta2, eps;
  int64_t t;                   /* steps taken */
  double beta1_pow, beta2_pow; /* beta^t */
  size_t count;
  double *m_hat, *v_hat; /* [count] for Adam, NULL otherwise; owned */
} sparq_signgd_optimizer;

/* lr > 0; for Adam 0 <= beta < 1 and eps >= 0 (the other kinds ignore them).
 * On failure *o is zeroed. */
sparq_status sparq_signgd_optimizer_init(sparq_signgd_optimizer *o, sparq_signgd_optim kind, double lr, double beta1,
                                         double beta2, double eps, size_t count);
/* One step: params[0..count) -= update(grad[0..count)). */
sparq_status sparq_signgd_optimizer_step(sparq_signgd_optimizer *o, double *params, const double *grad);
void sparq_signgd_optimizer_free(sparq_signgd_optimizer *o);

/* --------------------------------------------------------------- a run */

/* One training run. sparq_signgd_config_default fills the spec's section 7
 * values for an optimizer: n 32, n_test 2000, d 2000, s 40, sigma_p 1,
 * m_k = m_v = 8, sigma0 0.01, steps 600, SNR 1, seed 0, signal in patch 0;
 * lr 1e-3 (SignGD, Adam) or 0.5 (GD); Adam beta1 0.9, beta2 0.999,
 * eps 1e-15. */
typedef struct sparq_signgd_config {
  double snr;     /* ||mu|| / (sigma_p * sqrt(s)), >= 0 */
  int64_t d;      /* patch dimension, 2 .. 2^31-1 */
  int64_t s;      /* noise sparsity, 1..d-1 */
  int64_t n;      /* training samples, >= 1 */
  int64_t n_test; /* fresh test samples, >= 1 */
  double sigma_p; /* noise standard deviation, > 0 */
  int64_t m_k, m_v;
  double sigma0; /* initialisation standard deviation, >= 0 */
  int64_t steps; /* optimizer steps T >= 0 */
  sparq_signgd_optim optim;
  double lr, beta1, beta2, eps;
  uint64_t seed;
  bool random_position; /* signal patch at a random position per sample */
} sparq_signgd_config;

void sparq_signgd_config_default(sparq_signgd_config *c, sparq_signgd_optim optim);
/* SPARQ_ERR_ARG naming the first bad field ("sparq_signgd: s 0 must be in 1..d-1"). */
sparq_status sparq_signgd_config_check(const sparq_signgd_config *c);

/* Training loss below which a run counts as converged (t_conv). */
#define SPARQ_SIGNGD_CONV_LOSS 0.01
/* Query/key noise sign alignment that marks the end of Stage II (t_align). */
#define SPARQ_SIGNGD_ALIGNED 0.95

/* The section 3 quantities at one step (after `step` optimizer updates).
 * Signal mu, noise xi_i and labels y_i are the training set's; (s, i) runs
 * over neurons s < m_k and training samples i < n. */
typedef struct sparq_signgd_point {
  int64_t step;
  double train_loss, test_loss; /* mean logistic loss */
  double test_error;            /* fraction of test samples with y f <= 0 */
  double value_signal;          /* <v, mu> */
  double value_noise;           /* (1/n) sum_i <v, y_i xi_i> */
  double q_signal, k_signal;    /* mean over s of |<w_{Q,s}, mu>|, |<w_{K,s}, mu>| */
  double q_noise, k_noise;      /* mean over (s, i) of |<w_{Q,s}, y_i xi_i>|, same for K */
  double q_noise_pos, k_noise_pos; /* fraction of (s, i) where that inner product is > 0 */
  double alignment;             /* fraction of (s, i) where the query and key noise signs agree */
  double s11;                   /* mean_i S: signal-patch query -> signal-patch key */
  double s21;                   /* mean_i S: noise-patch query -> signal-patch key */
  /* Stage III majority vote, over neurons whose vote is not tied (0.5 when
   * every vote ties): q_vote is the fraction with
   * sign<w_{Q,s}, mu> = sign(sum_i sign<w_{K,s}, y_i xi_i>); k_vote the
   * fraction with sign<w_{K,s}, mu> = -sign(sum_i sign<w_{Q,s}, y_i xi_i>)
   * (our gradient algebra: the key signal follows the opposite of the
   * query-noise vote). */
  double q_vote, k_vote;
  /* Fraction of (s, i) whose query (key) noise sign differs from its sign at
   * t_align; 0 up to t_align. */
  double q_flip, k_flip;
} sparq_signgd_point;

/* What a run recorded. Points are logged at every step up to 50, then every
 * 10 steps, at the last step, and at t_conv. */
typedef struct sparq_signgd_trace {
  sparq_signgd_config config;
  double mu_norm;              /* snr * sigma_p * sqrt(s) */
  double noise_l1;             /* (1/n) sum_i sum_k |xi_ik| of the training set */
  int64_t count;               /* logged points */
  sparq_signgd_point *points;  /* [count], ascending step; owned */
  double *q_signal_neuron;     /* [count][m_k] <w_{Q,s}, mu> per neuron; owned */
  double *k_signal_neuron;     /* [count][m_k] <w_{K,s}, mu>; owned */
  double *train_loss;          /* [steps + 1] training loss at every step; owned */
  int64_t t_conv;              /* first step with train loss < SPARQ_SIGNGD_CONV_LOSS, -1 if none */
  int64_t t_align;             /* first logged step with alignment >= SPARQ_SIGNGD_ALIGNED, -1 if none */
} sparq_signgd_trace;

/* Called after each step with the step number and its training loss; may be NULL. */
typedef void (*sparq_signgd_step_fn)(void *ctx, int64_t step, double train_loss);

/* One run: draws the training set (rng stream 0), the test set (stream 1)
 * and the initial model (stream 2) from config->seed, so runs that differ
 * only in the optimizer or the SNR share data draws and initialisation; then
 * `steps` full-batch steps. Single-threaded. On failure *out is zeroed. */
sparq_status sparq_signgd_train(const sparq_signgd_config *config, sparq_signgd_trace *out,
                                sparq_signgd_step_fn on_step, void *ctx);
void sparq_signgd_trace_free(sparq_signgd_trace *t);

/* The logged point at `step`, or NULL if that step was not logged. */
const sparq_signgd_point *sparq_signgd_trace_at(const sparq_signgd_trace *t, int64_t step);

/* Writes the trace as JSON Lines, atomically: one object per point with the
 * keys step, train_loss, test_loss, test_error, value_signal, value_noise,
 * q_signal, k_signal, q_noise, k_noise, q_noise_pos, k_noise_pos, alignment,
 * s11, s21, q_vote, k_vote, q_flip, k_flip, q_signal_neuron and
 * k_signal_neuron (arrays of m_k numbers). */
sparq_status sparq_signgd_write_log(const char *path, const sparq_signgd_trace *t);

/* Writes the points as a whitespace-separated table for gnuplot, atomically:
 * a '#' header naming the columns, then one row per point. */
sparq_status sparq_signgd_write_dat(const char *path, const sparq_signgd_trace *t);

/* ------------------------------------------------------------- the study */

/* Per-run figures for the table. NaN where a step was not reached. */
typedef struct sparq_signgd_summary {
  int64_t t_conv;           /* -1 if the run never converged */
  double test_loss_conv;    /* test loss at t_conv */
  double train_loss_final, test_loss_final, test_error_final; /* at step T */
  /* Stage I: growth of the value noise over the value signal from step 0 to
   * min(10, T), and the spec's SignGD prediction sqrt(2s/pi)/SNR. */
  double growth_ratio, growth_predicted;
  int64_t t_align;          /* -1 if never */
  double s11_at_40, s21_at_50;
  int64_t t_s21_small;      /* first logged step with s21 < 1e-2, -1 if none */
  int64_t t_s21_tiny;       /* first logged step with s21 < 1e-3, -1 if none */
  double s11_at_tiny;       /* s11 at t_s21_tiny */
  double q_vote_final, k_vote_final, q_flip_final, k_flip_final, q_noise_pos_final;
} sparq_signgd_summary;

void sparq_signgd_summarize(const sparq_signgd_trace *t, sparq_signgd_summary *out);

/* The spec's section 7 protocol: SNR in {0.1, 0.25, 0.5, 1.0} x seeds 0-4 x
 * {SignGD, Adam, GD} with each optimizer's defaults (60 runs, ordered by
 * optimizer, then SNR, then seed). d and steps override the defaults when
 * > 0 (the spec's d = 8000 variant; shorter runs for tests);
 * random_position is the spec's other variant. *out is a new array of
 * *count configs for sparq_free. */
#define SPARQ_SIGNGD_PROTOCOL_SNRS 4
#define SPARQ_SIGNGD_PROTOCOL_SEEDS 5
sparq_status sparq_signgd_protocol(int64_t d, int64_t steps, bool random_position, sparq_signgd_config **out,
                                   size_t *count);

/* Called (under a lock) each time a run finishes; may be NULL. */
typedef void (*sparq_signgd_done_fn)(void *ctx, size_t done, size_t total);

/* Runs `count` independent configs across the OpenMP threads, one run per
 * thread at a time. traces[i] belongs to configs[i] and is bitwise the same
 * at any thread count. On failure every trace is freed and zeroed and the
 * message of the first failing run (in config order) is recorded. */
sparq_status sparq_signgd_run_all(const sparq_signgd_config *configs, size_t count, sparq_signgd_trace *traces,
                                  sparq_signgd_done_fn on_done, void *ctx);

/* Writes the study report for `count` traces, atomically:
 *   md_path   Markdown: a convergence table and a stage-marker table, one row
 *             per (optimizer, SNR), each cell the mean over seeds with the
 *             range, then the acceptance checks with measured figures;
 *   csv_path  CSV: one row per run with every sparq_signgd_summary field.
 * Either path may be NULL. The Markdown text is also returned in *md_text
 * when md_text is not NULL (free with free()). */
sparq_status sparq_signgd_write_report(const sparq_signgd_trace *traces, size_t count, const char *md_path,
                                       const char *csv_path, char **md_text);

/* Writes a gnuplot script (pngcairo) that draws the four stage figures from
 * the traces' .dat files: losses.png (train and test loss, log scale),
 * signal_noise.png (value, query and key signal and noise), alignment.png
 * (query/key noise sign alignment and fraction positive) and softmax.png
 * (s11 and s21, log scale). One panel per SNR, one line style per optimizer;
 * dat_paths[i] is the .dat file of traces[i] (see sparq_signgd_write_dat) and
 * png_dir the directory the PNGs go to. Only traces with the smallest seed
 * among them are drawn. Paths are written into the script as given. */
sparq_status sparq_signgd_write_plot_script(const char *script_path, const char *png_dir,
                                            const sparq_signgd_trace *traces, const char *const *dat_paths,
                                            size_t count);

#ifdef __cplusplus
}
#endif
#endif
