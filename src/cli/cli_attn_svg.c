/* sparq attn --variant svg: Sparse VideoGen attention on .npy inputs
 * [B,H,S,d] (video tokens frame-major), or on generated heads with a
 * planted spatial or temporal structure (--case). Prints one line per head
 * with its decision, the measured density, and (always) the error and speed
 * against the dense baseline: the same kernel over all keys. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"


typedef struct svg_args {
  const char *q, *k, *v, *out, *variant, *text, *sink, *inner, *case_name, *shape;
  int64_t frames, frame_tokens, text_tokens, block, profile_rows, seed, reps, layer, n_layers, step, n_steps;
  double budget, warmup_layers, warmup_steps;
  bool inclusive;
} svg_args;

static const char *head_name(sparq_svg_head h) {
  return h == SPARQ_SVG_TEMPORAL ? "temporal" : h == SPARQ_SVG_SPATIAL ? "spatial" : "dense";
}

static int build(const svg_args *a, sparq_svg_options *o) {
  if (a->frames < 1 || a->frame_tokens < 1) return cli_usage_error("attn", "--variant svg needs --frames F and --frame-tokens P");
  *o = sparq_svg_options_default(a->frames, a->frame_tokens);
  o->text_tokens = a->text_tokens;
  if (a->text) o->text = !strcmp(a->text, "first") ? SPARQ_SVG_TEXT_FIRST
                         : !strcmp(a->text, "last") ? SPARQ_SVG_TEXT_LAST
                                                    : SPARQ_SVG_TEXT_NONE;
  else o->text = a->text_tokens > 0 ? SPARQ_SVG_TEXT_FIRST : SPARQ_SVG_TEXT_NONE;
  if (a->budget > 0) o->budget = a->budget;
  if (a->block > 0) o->block = a->block;
  o->inclusive_width = a->inclusive;
  if (a->profile_rows > 0) o->profile_rows = a->profile_rows;
  if (a->sink) o->sink = !strcmp(a->sink, "parity") ? SPARQ_SVG_SINK_PARITY
                         : !strcmp(a->sink, "frame0") ? SPARQ_SVG_SINK_FRAME0
                                                      : SPARQ_SVG_SINK_OFF;
  if (a->inner && !strcmp(a->inner, "sage_cpu")) o->inner = SPARQ_ATTN_SAGE_CPU;
  o->seed = (uint64_t)a->seed;
  o->layer = a->layer, o->n_layers = a->n_layers, o->step = a->step, o->n_steps = a->n_steps;
  o->warmup_layers = a->warmup_layers, o->warmup_steps = a->warmup_steps;
  return CLI_OK;
}

/* Runs sparse and dense `reps` times, interleaved; keeps the best times. */
static int run(const svg_args *a, const sparq_svg_options *o, const float *q, const float *k, const float *v,
               int64_t B, int64_t H, int64_t S, int64_t d, const sparq_svg_head *planted, const char *out_path) {
  size_t n = (size_t)(B * H * S * d);
  float *o_sp = sparq_alloc(n * sizeof(float), "SVG output"), *o_dn = sparq_alloc(n * sizeof(float), "dense output");
  sparq_svg_head *dec = sparq_alloc((size_t)(B * H) * sizeof *dec, "decisions");
  sparq_svg_head *dense = sparq_alloc((size_t)(B * H) * sizeof *dense, "decisions");
  int rc = CLI_OK;
  if (!o_sp || !o_dn || !dec || !dense) {
    rc = cli_fail_last_error();
    goto done;
  }
  for (int64_t i = 0; i < B * H; i++) dense[i] = SPARQ_SVG_DENSE;
  sparq_svg_options od = *o;
  od.force = dense;
  od.inner = SPARQ_ATTN_FLASH_F32; /* the reference and the baseline: dense FP32 */
  sparq_svg_stats st = {0}, best = {0};
  double t_sp = INFINITY, t_dn = INFINITY;
  for (int64_t r = 0; r < a->reps; r++) {
    double t0 = sparq_now();
    if (sparq_svg_attention(q, k, v, o_sp, B, H, d, o, dec, &st)) {
      rc = cli_fail_last_error();
      goto done;
    }
    double t1 = sparq_now();
    if (sparq_svg_attention(q, k, v, o_dn, B, H, d, &od, NULL, NULL)) {
      rc = cli_fail_last_error();
      goto done;
    }
    double t2 = sparq_now();
    if (t1 - t0 < t_sp) t_sp = t1 - t0, best = st;
    if (t2 - t1 < t_dn) t_dn = t2 - t1;
  }
  int64_t right = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      sparq_svg_head x = dec[b * H + h];
      if (planted) {
        right += x == planted[b * H + h];
        printf("batch %lld head %lld: %s (planted %s)\n", (long long)b, (long long)h, head_name(x),
               head_name(planted[b * H + h]));
      } else {
        printf("batch %lld head %lld: %s\n", (long long)b, (long long)h, head_name(x));
      }
    }
  sparq_attn_error e;
  sparq_attn_compare(o_dn, o_sp, n, &e);
  double rel_l2 = 0, ref2 = 0;
  for (size_t i = 0; i < n; i++) rel_l2 += ((double)o_sp[i] - o_dn[i]) * ((double)o_sp[i] - o_dn[i]), ref2 += (double)o_dn[i] * o_dn[i];
  rel_l2 = ref2 > 0 ? sqrt(rel_l2 / ref2) : 0;
  if (planted) printf("profiling: %lld of %lld heads labelled as planted\n", (long long)right, (long long)(B * H));
  printf("density %.4f (budget %.3g), %lld spatial, %lld temporal, %lld dense heads\n", best.density, o->budget,
         (long long)best.spatial_heads, (long long)best.temporal_heads, (long long)best.dense_heads);
  printf("vs dense FP32 (same kernel, all keys): rel-L2 %.3e, CosSim %.6f, max |error| %.3g, non-finite %lld\n", rel_l2,
         e.cos_sim, e.max_abs, (long long)e.nonfinite);
  printf("time (best of %lld, %d threads, inner %s): sparse %.3f ms (profiling %.1f%%, layout %.1f%%), dense FP32 %.3f ms, "
         "speedup %.2fx\n",
         (long long)a->reps, sparq_threads(), sparq_attn_variant_name(o->inner), t_sp * 1e3,
         100 * best.profile_seconds / t_sp, 100 * best.layout_seconds / t_sp, t_dn * 1e3, t_dn / t_sp);
  if (out_path) {
    sparq_tensor t = {.data = o_sp, .dtype = SPARQ_F32, .ndim = 4, .shape = {B, H, S, d}};
    if (sparq_npy_write(out_path, &t)) rc = cli_fail_last_error();
  }
done:
  sparq_free(o_sp), sparq_free(o_dn), sparq_free(dec), sparq_free(dense);
  return rc;
}

static int load_f32(const char *path, sparq_tensor *t, float **out) {
  if (sparq_npy_read(path, t)) return cli_fail_last_error();
  if (t->ndim != 4) return cli_fail("%s: SVG inputs are [B,H,S,d]; this one has %d dimensions", path, t->ndim);
  size_t n;
  if (!sparq_tensor_numel(t, &n) || n == 0) return cli_fail("%s: empty or too large", path);
  *out = sparq_alloc(n * sizeof(float), path);
  if (!*out || sparq_tensor_to_f32(t, *out)) return cli_fail_last_error();
  return CLI_OK;
}

int cli_attn_svg(int argc, char **argv) {
  svg_args a = {.reps = 3, .seed = 0};
  const cli_opt opts[] = {
      {"q", CLI_STRING, &a.q, 0, 0, NULL},
      {"k", CLI_STRING, &a.k, 0, 0, NULL},
      {"v", CLI_STRING, &a.v, 0, 0, NULL},
      {"out", CLI_STRING, &a.out, 0, 0, NULL},
      {"variant", CLI_STRING, &a.variant, 0, 0, NULL},
      {"frames", CLI_INT, &a.frames, 1, 1 << 20, NULL},
      {"frame-tokens", CLI_INT, &a.frame_tokens, 1, 1 << 24, NULL},
      {"text-tokens", CLI_INT, &a.text_tokens, 0, 1 << 24, NULL},
      {"text", CLI_CHOICE, &a.text, 0, 0, "first|last|none"},
      {"budget", CLI_DOUBLE, &a.budget, 1e-6, 1, NULL},
      {"block", CLI_INT, &a.block, 1, 1 << 20, NULL},
      {"inclusive-width", CLI_BOOL, &a.inclusive, 0, 0, NULL},
      {"profile-rows", CLI_INT, &a.profile_rows, 1, 1 << 20, NULL},
      {"sink", CLI_CHOICE, &a.sink, 0, 0, "off|parity|frame0"},
      {"inner", CLI_CHOICE, &a.inner, 0, 0, "flash_f32|sage_cpu"},
      {"seed", CLI_INT, &a.seed, 0, 9.2e18, NULL},
      {"reps", CLI_INT, &a.reps, 1, 1000, NULL},
      {"case", CLI_CHOICE, &a.case_name, 0, 0, "spatial|temporal|mixed"},
      {"shape", CLI_STRING, &a.shape, 0, 0, NULL},
      {"layer", CLI_INT, &a.layer, 0, 1 << 20, NULL},
      {"n-layers", CLI_INT, &a.n_layers, 1, 1 << 20, NULL},
      {"step", CLI_INT, &a.step, 0, 1 << 20, NULL},
      {"n-steps", CLI_INT, &a.n_steps, 1, 1 << 20, NULL},
      {"warmup-layers", CLI_DOUBLE, &a.warmup_layers, 0, 1, NULL},
      {"warmup-steps", CLI_DOUBLE, &a.warmup_steps, 0, 1, NULL},
  };
  int rc = cli_parse("attn", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc) return rc;
  sparq_svg_options o;
  if ((rc = build(&a, &o))) return rc;
  const int64_t S = o.text_tokens + o.frames * o.frame_tokens;
  if (a.case_name) {
    if (a.q || a.k || a.v) return cli_usage_error("attn", "--case generates its inputs: drop --q/--k/--v");
    long long B = 1, H = 4, d = 64;
    if (a.shape && sscanf(a.shape, "%lld,%lld,%lld", &B, &H, &d) != 3)
      return cli_usage_error("attn", "--shape for an SVG case is B,H,d (S comes from --frames, --frame-tokens, --text-tokens)");
    if (B < 1 || H < 1 || d < 1 || d > 256 || B * H > 4096) return cli_usage_error("attn", "--shape %s is out of range", a.shape);
    int kind = !strcmp(a.case_name, "spatial") ? 0 : !strcmp(a.case_name, "temporal") ? 1 : 2;
    size_t n = (size_t)(B * H * S * d);
    float *q = sparq_alloc(n * sizeof(float), "q"), *k = sparq_alloc(n * sizeof(float), "k");
    float *v = sparq_alloc(n * sizeof(float), "v");
    sparq_svg_head *planted = sparq_alloc((size_t)(B * H) * sizeof *planted, "planted");
    if (!q || !k || !v || !planted || sparq_svg_make_case(kind, B, H, d, &o, (uint64_t)a.seed, q, k, v, planted))
      rc = cli_fail_last_error();
    else {
      printf("svg case %s: B %lld, H %lld, S %lld (F %lld x P %lld + L %lld), d %lld, budget %.3g, t %lld\n",
             a.case_name, B, H, (long long)S, (long long)o.frames, (long long)o.frame_tokens,
             (long long)o.text_tokens, d, o.budget, (long long)o.profile_rows);
      rc = run(&a, &o, q, k, v, B, H, S, d, planted, a.out);
    }
    sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(planted);
    return rc;
  }
  if (!a.q || !a.k || !a.v) return cli_usage_error("attn", "--variant svg needs --q, --k and --v (or --case)");
  sparq_tensor tq = {0}, tk = {0}, tv = {0};
  float *q = NULL, *k = NULL, *v = NULL;
  if (!(rc = load_f32(a.q, &tq, &q)) && !(rc = load_f32(a.k, &tk, &k)) && !(rc = load_f32(a.v, &tv, &v))) {
    for (int i = 0; i < 4 && !rc; i++)
      if (tk.shape[i] != tq.shape[i] || tv.shape[i] != tq.shape[i])
        rc = cli_fail("%s, %s, %s: Q, K and V must have the same shape [B,H,S,d]", a.q, a.k, a.v);
    if (!rc && tq.shape[2] != S)
      rc = cli_fail("%s: S = %lld tokens, but L + F P = %lld", a.q, (long long)tq.shape[2], (long long)S);
    if (!rc) rc = run(&a, &o, q, k, v, tq.shape[0], tq.shape[1], S, tq.shape[3], NULL, a.out);
  }
  sparq_tensor_free(&tq), sparq_tensor_free(&tk), sparq_tensor_free(&tv);
  sparq_free(q), sparq_free(k), sparq_free(v);
  return rc;
}
