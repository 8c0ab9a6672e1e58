/* sparq bench svg: Sparse VideoGen's band kernel against the dense kernel
 * (the same flash tiles over all keys) on generated mixed heads. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "kernels/svg_bench.h"
#include "sparq/sparq.h"

int cli_bench_svg(int argc, char **argv) {
  bool json = false, forced = false;
  int64_t reps = 5, heads = 4, d = 64;
  const char *sink = "parity", *inner = "both";
  const cli_opt opts[] = {
      {"json", CLI_BOOL, &json, 0, 0, NULL},
      {"reps", CLI_INT, &reps, 1, 1000, NULL},
      {"heads", CLI_INT, &heads, 1, 64, NULL},
      {"d", CLI_INT, &d, 1, 256, NULL},
      {"sink", CLI_CHOICE, &sink, 0, 0, "off|parity|frame0"},
      {"inner", CLI_CHOICE, &inner, 0, 0, "flash_f32|sage_cpu|both"},
      {"forced", CLI_BOOL, &forced, 0, 0, NULL},
  };
  int rc = cli_parse("bench", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  static const int64_t shapes[][2] = {{8, 256}, {16, 256}};
  static const double budgets[] = {0.1, 0.25, 0.5};
  const sparq_attn_variant inners[] = {SPARQ_ATTN_FLASH_F32, SPARQ_ATTN_SAGE_CPU};
  if (!json)
    printf("bench svg: B 1, H %lld, d %lld, mixed planted heads (half spatial, half temporal), sink %s, %s decisions,\n"
           "%d threads, best of %lld interleaved runs after 2 warm-ups; speedups against the dense FP32 kernel\n"
           "(the same flash tiles over all keys) for both inner variants\n"
           "%4s %4s %6s %-9s %10s %10s %8s %8s %9s %8s %8s\n",
           (long long)heads, (long long)d, sink, forced ? "forced (planted)" : "profiled", sparq_threads(),
           (long long)reps, "F", "P", "budget", "inner", "dense ms", "sparse ms", "speedup", "density", "profile%",
           "layout%", "rel-L2");
  for (size_t si = 0; si < 2 && !rc; si++)
    for (size_t bi = 0; bi < 3 && !rc; bi++)
      for (size_t ii = 0; ii < 2 && !rc; ii++) {
        if (strcmp(inner, "both") && strcmp(inner, sparq_attn_variant_name(inners[ii]))) continue;
        sparq_svg_options o = sparq_svg_options_default(shapes[si][0], shapes[si][1]);
        o.budget = budgets[bi];
        o.inner = inners[ii];
        o.sink = !strcmp(sink, "parity") ? SPARQ_SVG_SINK_PARITY : !strcmp(sink, "frame0") ? SPARQ_SVG_SINK_FRAME0
                                                                                           : SPARQ_SVG_SINK_OFF;
        sparq_svg_head planted[64];
        if (forced) {
          for (int64_t h = 0; h < heads; h++) planted[h] = h % 2 ? SPARQ_SVG_TEMPORAL : SPARQ_SVG_SPATIAL;
          o.force = planted;
        }
        svg_bench_result r;
        if (svg_bench_row(&o, 2, 1, heads, d, 1, 2, (int)reps, &r)) {
          rc = cli_fail_last_error();
          break;
        }
        if (json)
          printf("{\"F\":%lld,\"P\":%lld,\"budget\":%g,\"inner\":\"%s\",\"threads\":%d,\"dense_ms\":%.4f,"
                 "\"sparse_ms\":%.4f,\"speedup\":%.4f,\"density\":%.4f,\"profile_frac\":%.4f,\"layout_frac\":%.4f,"
                 "\"rel_l2\":%.4g}\n",
                 (long long)shapes[si][0], (long long)shapes[si][1], budgets[bi], sparq_attn_variant_name(inners[ii]),
                 r.threads, r.dense_ms, r.sparse_ms, r.speedup, r.density, r.profile_pct / 100, r.layout_pct / 100,
                 r.rel_l2);
        else
          printf("%4lld %4lld %6.2f %-9s %10.3f %10.3f %7.2fx %8.4f %8.1f%% %7.1f%% %8.3g\n", (long long)shapes[si][0],
                 (long long)shapes[si][1], budgets[bi], sparq_attn_variant_name(inners[ii]), r.dense_ms, r.sparse_ms,
                 r.speedup, r.density, r.profile_pct, r.layout_pct, r.rel_l2);
        fflush(stdout);
      }
  return rc;
}
