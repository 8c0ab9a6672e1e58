/* One row of the Sparse VideoGen kernel benchmark (spec §8): dense FP32 (the
 * same flash tiles over all keys, every head forced DENSE, whatever the
 * inner variant of the sparse run) against sparse
 * (profiled decisions, band kernel), interleaved, best of `reps` after
 * `warmups` untimed pairs, at the current OpenMP thread count. Prints
 * nothing; the CLI formats the row. */
#ifndef SPARQ_KERNELS_SVG_BENCH_H
#define SPARQ_KERNELS_SVG_BENCH_H

#include <stdint.h>

#include "sparq/svg.h"

typedef struct svg_bench_result {
  double dense_ms, sparse_ms;      /* best (minimum) wall time of one call */
  double speedup;                  /* dense_ms / sparse_ms */
  double density;                  /* measured, sparse heads only (stats of the best sparse run) */
  double profile_pct, layout_pct;  /* of the best sparse run's wall time */
  int64_t spatial_heads, temporal_heads, dense_heads;
  double rel_l2;                   /* ||O_sparse - O_dense|| / ||O_dense|| */
  int threads;
} svg_bench_result;

/* Times sparq_svg_attention on sparq_svg_make_case(kind, B, H, d, opts,
 * seed) inputs (kind 0 spatial, 1 temporal, 2 mixed). opts->force is
 * honoured for the sparse runs (NULL: profiling is part of the time).
 * warmups >= 0, reps >= 1. */
sparq_status svg_bench_row(const sparq_svg_options *opts, int kind, int64_t B, int64_t H, int64_t d, uint64_t seed,
                           int warmups, int reps, svg_bench_result *out);

#endif
