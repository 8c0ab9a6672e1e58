/* Shared by the diffusion sources: the sampling run (buffers, the guided
 * denoiser call, NFE counters) and the per-sampler loops. */
#ifndef SPARQ_DIFF_INTERNAL_H
#define SPARQ_DIFF_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "sparq/diffusion.h"

/* Elementwise loops go parallel only from this many floats on: below it the
 * fork/join costs more than the work (the 2-D toy has n * 2 floats). */
#define DIFF_PAR_MIN 32768

/* One sampling call. The state x~ (sigma space, see diffusion.h) lives in
 * the caller's x buffer throughout. */
typedef struct diff_run {
  const sparq_diffusion *d;
  const sparq_denoiser *net;
  const sparq_sample_config *cfg;
  const int32_t *y;
  int64_t n, dim;
  size_t len;   /* n * dim */
  bool guided;  /* cfg_scale != 1: 2n rows per call */
  /* network batch, rows = n or 2n */
  float *net_x, *net_t, *net_extra, *net_out;
  int32_t *net_y;
  /* sampler work arrays, [n, dim] each */
  float *x0;    /* the x0 estimate D of the latest evaluation */
  float *work1; /* sampler-specific: Heun's derivative, DPM's previous D, DDIM's noise */
  float *work2; /* Heun: the predictor state; then (after the update is done)
                   the on_step callback's state in model variables */
  float *work3; /* Heun: D at the predictor */
  int64_t evals; /* diff_denoise calls (per-sample network evaluations before CFG doubling) */
  int64_t calls, rows;
} diff_run;

/* D (x0 estimate) [n, dim] for state xs [n, dim] at sigma-space level
 * sigma > 0 with network time input t: feeds the network its own variables,
 * combines guided rows, converts the head to x0. */
sparq_status diff_denoise(diff_run *r, const float *xs, double sigma, double t, float *x0);

/* Reports update `step` to the on_step callback (if any); sigma_next is the
 * level the state now sits at. */
void diff_report_step(diff_run *r, int64_t step, const float *xs, double sigma_next);

/* The samplers: advance the state xs [n, dim] (sigma space, starting at
 * sigmas[0]) to sigma 0 in place. `sigmas` [steps + 1] descending with
 * sigmas[steps] = 0; `times` [steps] the network time inputs of
 * sigmas[0..steps). */
sparq_status diff_sample_ddim(diff_run *r, float *xs, const double *sigmas, const double *times, int64_t steps);
sparq_status diff_sample_euler(diff_run *r, float *xs, const double *sigmas, const double *times, int64_t steps);
sparq_status diff_sample_heun(diff_run *r, float *xs, const double *sigmas, const double *times, int64_t steps);
sparq_status diff_sample_dpmpp2m(diff_run *r, float *xs, const double *sigmas, const double *times,
                                 int64_t steps);

/* x0 from a raw head output `out` for one element whose state (sigma space)
 * is xs, at sigma-space level sigma (alpha = 1 / sqrt(1 + sigma^2) for VP). */
double diff_head_to_x0(const sparq_diffusion *d, double out, double xs, double sigma);

#endif
