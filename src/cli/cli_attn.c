/* sparq attn: one attention call on .npy files (forward, LSE, backward,
 * quantization dumps), or one variant on a generated spec §8 case with its
 * accuracy against ref_f64 and its time. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"


typedef struct attn_args {
  const char *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv, *dump;
  const char *variant, *layout, *granularity, *pv_accum, *smooth_k, *smooth_q, *smooth_v, *refine_k;
  const char *case_name, *shape, *save;
  bool causal;
  double scale;
  int64_t causal_offset, kv_heads, kv_len, seed, reps;
  bool has_offset;
} attn_args;

/* Fills the options shared by both modes from the parsed flags. */
static int build_options(const attn_args *a, sparq_attn_options *o) {
  *o = sparq_attn_options_default();
  if (a->variant && !sparq_attn_variant_from_name(a->variant, &o->variant))
    return cli_usage_error("attn", "--variant must be one of ref_f64, flash_f32, sage1, sage2_8b, sage2_4b, sage_cpu, got '%s'",
                 a->variant);
  o->layout = a->layout && !strcmp(a->layout, "NHD") ? SPARQ_ATTN_NHD : SPARQ_ATTN_HND;
  o->causal = a->causal;
  if (a->has_offset) {
    if (!a->causal) return cli_usage_error("attn", "--causal-offset needs --causal");
    o->has_causal_offset = true, o->causal_offset = a->causal_offset;
  }
  o->sm_scale = (float)a->scale;
  if (a->granularity && !sparq_attn_granularity_from_name(a->granularity, &o->granularity))
    return cli_usage_error("attn", "--granularity must be per_thread, per_warp, per_block or per_token, got '%s'", a->granularity);
  if (a->pv_accum && !sparq_attn_pv_accum_from_name(a->pv_accum, &o->pv_accum))
    return cli_usage_error("attn", "--pv-accum must be f32, f22, f22+f32, f16+f32, bf16+f32 or u8, got '%s'", a->pv_accum);
  const char *sw[] = {a->smooth_k, a->smooth_q, a->smooth_v};
  sparq_attn_switch *dst[] = {&o->smooth_k, &o->smooth_q, &o->smooth_v};
  for (int i = 0; i < 3; i++)
    if (sw[i]) *dst[i] = !strcmp(sw[i], "on") ? SPARQ_ATTN_ON : SPARQ_ATTN_OFF;
  if (a->refine_k)
    o->refine_k = !strcmp(a->refine_k, "on") ? SPARQ_ATTN_ON : !strcmp(a->refine_k, "off") ? SPARQ_ATTN_OFF : SPARQ_ATTN_AUTO;
  return CLI_OK;
}

/* ------------------------------------------------------------ file mode */

/* An input tensor as the API wants it: F16 kept as is when all three inputs
 * are F16, everything else widened to F32. */
typedef struct input {
  const char *path;
  sparq_tensor t;
  float *f32;
} input;

static int load_input(input *in) {
  if (sparq_npy_read(in->path, &in->t) != SPARQ_OK) return cli_fail_last_error();
  if (in->t.ndim != 4)
    return cli_fail("%s: attention inputs are 4-D ([B,H,N,d] or [B,N,H,d]), this one has %d dimensions", in->path,
                    in->t.ndim);
  return CLI_OK;
}

static int widen(input *in) {
  size_t n;
  if (!sparq_tensor_numel(&in->t, &n)) return cli_fail("%s: tensor too large", in->path);
  in->f32 = sparq_alloc((n ? n : 1) * sizeof(float), in->path);
  if (!in->f32 || sparq_tensor_to_f32(&in->t, in->f32) != SPARQ_OK) return cli_fail_last_error();
  return CLI_OK;
}

/* Writes a float array as .npy with the given shape. */
static int write_npy(const char *path, float *data, int ndim, const int64_t *shape) {
  sparq_tensor t = {.data = data, .dtype = SPARQ_F32, .ndim = ndim};
  for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
  if (sparq_npy_write(path, &t) != SPARQ_OK) return cli_fail_last_error();
  return CLI_OK;
}

static int run_files(const attn_args *a, sparq_attn_options *o) {
  if (!a->q || !a->k || !a->v || !a->out) return cli_usage_error("attn", "--q, --k, --v and --out are required (or use --case)");
  const bool backward = a->dout || a->dq || a->dk || a->dv;
  if (backward && !(a->dout && a->dq && a->dk && a->dv))
    return cli_usage_error("attn", "the backward needs all of --dout, --dq, --dk and --dv");
  if (a->dump) {
    if (cli_mkdirs(a->dump) != CLI_OK) return CLI_FAIL;
    o->dump_dir = a->dump;
  }
  input in[4] = {{.path = a->q}, {.path = a->k}, {.path = a->v}, {.path = a->dout}};
  const int ninputs = backward ? 4 : 3;
  int rc = CLI_OK;
  float *out = NULL, *lse = NULL, *grads[3] = {NULL, NULL, NULL};
  for (int i = 0; i < ninputs && rc == CLI_OK; i++) rc = load_input(&in[i]);
  if (rc != CLI_OK) goto done;

  /* shape from the layout: HND [B,H,N,d], NHD [B,N,H,d] */
  const bool nhd = o->layout == SPARQ_ATTN_NHD;
  const int64_t *qs = in[0].t.shape, *ks = in[1].t.shape, *vs = in[2].t.shape;
  sparq_attn_shape s = {qs[0], nhd ? qs[2] : qs[1], nhd ? ks[2] : ks[1], nhd ? qs[1] : qs[2], nhd ? ks[1] : ks[2], qs[3]};
  for (int i = 0; i < 4; i++)
    if (vs[i] != ks[i]) {
      rc = cli_fail("%s: V has shape [%lld,%lld,%lld,%lld] but K (%s) has [%lld,%lld,%lld,%lld]", a->v,
                    (long long)vs[0], (long long)vs[1], (long long)vs[2], (long long)vs[3], a->k, (long long)ks[0],
                    (long long)ks[1], (long long)ks[2], (long long)ks[3]);
      goto done;
    }
  if (ks[0] != qs[0] || ks[3] != qs[3]) {
    rc = cli_fail("%s: K's batch and head dim (%lld, %lld) differ from Q's (%lld, %lld) in %s", a->k,
                  (long long)ks[0], (long long)ks[3], (long long)qs[0], (long long)qs[3], a->q);
    goto done;
  }
  if (backward && memcmp(in[3].t.shape, qs, sizeof(int64_t) * 4)) {
    rc = cli_fail("%s: dO must have Q's shape", a->dout);
    goto done;
  }
  const bool all_f16 = !backward && in[0].t.dtype == SPARQ_F16 && in[1].t.dtype == SPARQ_F16 &&
                       in[2].t.dtype == SPARQ_F16;
  const void *ptr[4];
  for (int i = 0; i < ninputs; i++) {
    if (all_f16) {
      ptr[i] = in[i].t.data;
      continue;
    }
    if ((rc = widen(&in[i])) != CLI_OK) goto done;
    ptr[i] = in[i].f32;
  }
  o->dtype = all_f16 ? SPARQ_F16 : SPARQ_F32;

  const size_t nq = (size_t)(s.batch * s.q_heads * s.q_len * s.head_dim), nl = (size_t)(s.batch * s.q_heads * s.q_len);
  const size_t nk = (size_t)(s.batch * s.kv_heads * s.kv_len * s.head_dim);
  out = sparq_alloc(nq * sizeof(float), "attention output");
  lse = sparq_alloc(nl * sizeof(float), "attention LSE");
  if (!out || !lse) {
    rc = cli_fail_last_error();
    goto done;
  }
  o->lse = lse;
  double t0 = sparq_now();
  if (sparq_attention(ptr[0], ptr[1], ptr[2], out, &s, o) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  double t_fwd = sparq_now() - t0;
  if ((rc = write_npy(a->out, out, 4, qs)) != CLI_OK) goto done;
  const int64_t lshape[3] = {s.batch, s.q_heads, s.q_len};
  if (a->lse && (rc = write_npy(a->lse, lse, 3, lshape)) != CLI_OK) goto done;
  printf("%s: %s, B %lld, heads %lld/%lld, Nq %lld, Nk %lld, d %lld, %s, %s%s: %.2f ms\n", a->out,
         sparq_attn_variant_name(o->variant), (long long)s.batch, (long long)s.q_heads, (long long)s.kv_heads,
         (long long)s.q_len, (long long)s.kv_len, (long long)s.head_dim, nhd ? "NHD" : "HND",
         sparq_dtype_name(o->dtype), o->causal ? ", causal" : "", t_fwd * 1e3);
  if (a->lse) printf("%s: LSE [%lld, %lld, %lld], natural log\n", a->lse, (long long)s.batch, (long long)s.q_heads,
                     (long long)s.q_len);
  if (a->dump) printf("%s/: quantized Q/K, scales, delta-S and smoothing means (.npy)\n", a->dump);

  if (backward) {
    const size_t counts[3] = {nq, nk, nk};
    for (int i = 0; i < 3; i++)
      if (!(grads[i] = sparq_alloc(counts[i] * sizeof(float), "attention gradient"))) {
        rc = cli_fail_last_error();
        goto done;
      }
    sparq_attn_options bo = *o;
    bo.lse = NULL;
    t0 = sparq_now();
    if (sparq_attention_backward(ptr[0], ptr[1], ptr[2], out, lse, ptr[3], grads[0], grads[1], grads[2], &s, &bo) !=
        SPARQ_OK) {
      rc = cli_fail_last_error();
      goto done;
    }
    double t_bwd = sparq_now() - t0;
    const char *paths[3] = {a->dq, a->dk, a->dv};
    const int64_t *shapes[3] = {qs, ks, ks};
    for (int i = 0; i < 3 && rc == CLI_OK; i++) rc = write_npy(paths[i], grads[i], 4, shapes[i]);
    if (rc == CLI_OK) printf("%s, %s, %s: backward %.2f ms\n", a->dq, a->dk, a->dv, t_bwd * 1e3);
  }
done:
  for (int i = 0; i < 4; i++) {
    sparq_tensor_free(&in[i].t);
    sparq_free(in[i].f32);
  }
  sparq_free(out);
  sparq_free(lse);
  for (int i = 0; i < 3; i++) sparq_free(grads[i]);
  return rc;
}

/* ------------------------------------------------------------ case mode */

static bool parse_shape(const char *text, int64_t out[4]) {
  const char *p = text;
  for (int i = 0; i < 4; i++) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 1 || v > (1 << 30)) return false;
    out[i] = v;
    p = end;
    if (i < 3) {
      if (*p != ',') return false;
      p++;
    }
  }
  return *p == '\0';
}

static int run_case(const attn_args *a, sparq_attn_options *o) {
  if (a->q || a->k || a->v || a->out || a->lse || a->dout || a->dq || a->dk || a->dv || a->dump)
    return cli_usage_error("attn", "--case generates its inputs: drop --q/--k/--v/--out/--lse/--dout/--dq/--dk/--dv/--dump");
  if (!a->shape) return cli_usage_error("attn", "--case needs --shape B,H,N,d");
  int case_id = -1;
  if (strlen(a->case_name) == 2 && (a->case_name[0] == 'D' || a->case_name[0] == 'd') && a->case_name[1] >= '0' &&
      a->case_name[1] <= '5')
    case_id = a->case_name[1] - '0';
  if (case_id < 0) return cli_usage_error("attn", "--case must be D0..D5, got '%s'", a->case_name);
  int64_t sh[4];
  if (!parse_shape(a->shape, sh)) return cli_usage_error("attn", "--shape expects B,H,N,d (four positive integers), got '%s'", a->shape);
  sparq_attn_shape s = {sh[0], sh[1], a->kv_heads ? a->kv_heads : sh[1], sh[2], a->kv_len ? a->kv_len : sh[2], sh[3]};
  const size_t nq = (size_t)(s.batch * s.q_heads * s.q_len * s.head_dim);
  const size_t nk = (size_t)(s.batch * s.kv_heads * s.kv_len * s.head_dim);
  float *q = sparq_alloc(nq * 4, "Q"), *k = sparq_alloc(nk * 4, "K"), *v = sparq_alloc(nk * 4, "V");
  float *ref = sparq_alloc(nq * 4, "reference O"), *out = sparq_alloc(nq * 4, "O");
  int rc = CLI_OK;
  if (!q || !k || !v || !ref || !out) {
    rc = cli_fail_last_error();
    goto done;
  }
  if (sparq_attn_make_case(case_id, &s, o->layout, (uint64_t)a->seed, q, k, v) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  sparq_attn_options ro = *o;
  ro.variant = SPARQ_ATTN_REF_F64;
  ro.granularity = SPARQ_ATTN_GRAN_DEFAULT, ro.pv_accum = SPARQ_ATTN_PV_DEFAULT;
  ro.smooth_k = ro.smooth_q = ro.smooth_v = ro.refine_k = SPARQ_ATTN_AUTO;
  double t0 = sparq_now();
  if (sparq_attention(q, k, v, ref, &s, &ro) != SPARQ_OK) {
    rc = cli_fail_last_error();
    goto done;
  }
  const double t_ref = sparq_now() - t0;
  double best = INFINITY;
  for (int64_t r = 0; r < a->reps; r++) {
    t0 = sparq_now();
    if (sparq_attention(q, k, v, out, &s, o) != SPARQ_OK) {
      rc = cli_fail_last_error();
      goto done;
    }
    const double dt = sparq_now() - t0;
    best = dt < best ? dt : best;
  }
  if (a->save) { /* the case as files, for the file mode and for other tools */
    if (cli_mkdirs(a->save) != CLI_OK) {
      rc = CLI_FAIL;
      goto done;
    }
    const bool nhd = o->layout == SPARQ_ATTN_NHD;
    const int64_t qshape[4] = {s.batch, nhd ? s.q_len : s.q_heads, nhd ? s.q_heads : s.q_len, s.head_dim};
    const int64_t kshape[4] = {s.batch, nhd ? s.kv_len : s.kv_heads, nhd ? s.kv_heads : s.kv_len, s.head_dim};
    const char *names[5] = {"q", "k", "v", "o_ref", "o"};
    float *data[5] = {q, k, v, ref, out};
    for (int i = 0; i < 5 && rc == CLI_OK; i++) {
      char path[4096];
      if (snprintf(path, sizeof path, "%s/%s.npy", a->save, names[i]) >= (int)sizeof path) {
        rc = cli_fail("%s: path too long", a->save);
        break;
      }
      rc = write_npy(path, data[i], 4, i == 1 || i == 2 ? kshape : qshape);
    }
    if (rc != CLI_OK) goto done;
  }
  sparq_attn_error e;
  sparq_attn_compare(ref, out, nq, &e);
  const double flops = 4.0 * (double)s.batch * (double)s.q_heads * (double)s.q_len * (double)s.kv_len *
                       (double)s.head_dim * (o->causal ? 0.5 : 1.0);
  printf("attn %s on D%d, shape B %lld, heads %lld/%lld, Nq %lld, Nk %lld, d %lld, %s%s, seed %lld, %d threads\n",
         sparq_attn_variant_name(o->variant), case_id, (long long)s.batch, (long long)s.q_heads,
         (long long)s.kv_heads, (long long)s.q_len, (long long)s.kv_len, (long long)s.head_dim,
         o->layout == SPARQ_ATTN_NHD ? "NHD" : "HND", o->causal ? ", causal" : "", (long long)a->seed,
         sparq_threads());
  printf("  CosSim %.7f  RelL1 %.4g  RMSE %.4g  max|err| %.4g  non-finite %lld\n", e.cos_sim, e.rel_l1, e.rmse,
         e.max_abs, (long long)e.nonfinite);
  printf("  time %.3f ms (best of %lld)  %.1f GFLOP/s   ref_f64 %.1f ms\n", best * 1e3, (long long)a->reps,
         flops / best * 1e-9, t_ref * 1e3);
done:
  sparq_free(q), sparq_free(k), sparq_free(v), sparq_free(ref), sparq_free(out);
  return rc;
}

/* --variant svg has its own flags (cli_attn_svg.c). */
static bool wants_svg(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--variant=svg") || (!strcmp(argv[i], "--variant") && i + 1 < argc && !strcmp(argv[i + 1], "svg")))
      return true;
  }
  return false;
}

int cli_attn(int argc, char **argv) {
  if (wants_svg(argc, argv)) return cli_attn_svg(argc, argv);
  attn_args a = {.seed = 1, .reps = 3};
  const cli_opt opts[] = {
      {"q", CLI_STRING, &a.q, 0, 0, NULL},
      {"k", CLI_STRING, &a.k, 0, 0, NULL},
      {"v", CLI_STRING, &a.v, 0, 0, NULL},
      {"out", CLI_STRING, &a.out, 0, 0, NULL},
      {"lse", CLI_STRING, &a.lse, 0, 0, NULL},
      {"dout", CLI_STRING, &a.dout, 0, 0, NULL},
      {"dq", CLI_STRING, &a.dq, 0, 0, NULL},
      {"dk", CLI_STRING, &a.dk, 0, 0, NULL},
      {"dv", CLI_STRING, &a.dv, 0, 0, NULL},
      {"dump", CLI_STRING, &a.dump, 0, 0, NULL},
      {"variant", CLI_STRING, &a.variant, 0, 0, NULL},
      {"layout", CLI_CHOICE, &a.layout, 0, 0, "HND|NHD"},
      {"causal", CLI_BOOL, &a.causal, 0, 0, NULL},
      {"causal-offset", CLI_INT, &a.causal_offset, -(double)(1LL << 40), (double)(1LL << 40), NULL},
      {"scale", CLI_DOUBLE, &a.scale, 1e-30, 1e30, NULL},
      {"granularity", CLI_STRING, &a.granularity, 0, 0, NULL},
      {"pv-accum", CLI_STRING, &a.pv_accum, 0, 0, NULL},
      {"smooth-k", CLI_CHOICE, &a.smooth_k, 0, 0, "on|off"},
      {"smooth-q", CLI_CHOICE, &a.smooth_q, 0, 0, "on|off"},
      {"smooth-v", CLI_CHOICE, &a.smooth_v, 0, 0, "on|off"},
      {"refine-k", CLI_CHOICE, &a.refine_k, 0, 0, "auto|on|off"},
      {"case", CLI_STRING, &a.case_name, 0, 0, NULL},
      {"shape", CLI_STRING, &a.shape, 0, 0, NULL},
      {"save", CLI_STRING, &a.save, 0, 0, NULL},
      {"kv-heads", CLI_INT, &a.kv_heads, 1, 1 << 20, NULL},
      {"kv-len", CLI_INT, &a.kv_len, 1, 1 << 30, NULL},
      {"seed", CLI_INT, &a.seed, 0, 9e15, NULL},
      {"reps", CLI_INT, &a.reps, 1, 1000, NULL},
  };
  /* --causal-offset is optional and 0 is a valid value, so note its presence */
  for (int i = 1; i < argc; i++)
    if (!strncmp(argv[i], "--causal-offset", 15)) a.has_offset = true;
  int rc = cli_parse("attn", argc, argv, 1, opts, (int)(sizeof opts / sizeof opts[0]), NULL, 0, NULL);
  if (rc != CLI_OK) return rc;
  sparq_attn_options o;
  if ((rc = build_options(&a, &o)) != CLI_OK) return rc;
  if (!a.case_name && (a.shape || a.save || a.kv_heads || a.kv_len))
    return cli_usage_error("attn", "--shape, --kv-heads, --kv-len and --save belong to --case");
  return a.case_name ? run_case(&a, &o) : run_files(&a, &o);
}
