/* sparq sample: class-conditional images from a DiT checkpoint with any
 * sampler, CFG scale and attention kernel, as a PNG grid, .npy and GIF. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sparq/sparq.h"

/* GIFs show the trajectory of the first few samples. */
#define GIF_TILES 16

cli_sample_flags cli_sample_flags_default(void) {
  return (cli_sample_flags){.sampler = "ddim", .steps = 50, .cfg = 1.0, .cls = "all", .n = 64, .seed = 0,
                            .attn = "flash_f32", .eta = 0.0, .chunk = 256};
}

int cli_sample_opts(cli_sample_flags *f, cli_opt *opts) {
  int n = 0;
  opts[n++] = (cli_opt){"ckpt", CLI_STRING, &f->ckpt, 0, 0, NULL};
  opts[n++] = (cli_opt){"sampler", CLI_CHOICE, &f->sampler, 0, 0, "ddim|euler|heun|dpmpp2m"};
  opts[n++] = (cli_opt){"steps", CLI_INT, &f->steps, 1, 1000, NULL};
  opts[n++] = (cli_opt){"eta", CLI_DOUBLE, &f->eta, 0, 10, NULL};
  opts[n++] = (cli_opt){"seed", CLI_INT, &f->seed, 0, 9.2e18, NULL};
  opts[n++] = (cli_opt){"attn", CLI_STRING, &f->attn, 0, 0, NULL};
  opts[n++] = (cli_opt){"raw", CLI_BOOL, &f->raw, 0, 0, NULL};
  return n;
}

int cli_load_dit(const char *path, bool raw, sparq_dit **out, sparq_diffusion *diff, cli_dit_info *info) {
  cli_dit_info found = {0};
  sparq_safetensors *st = NULL;
  sparq_dit_config cfg;
  *out = NULL;
  if (sparq_safetensors_open(path, &st) || sparq_dit_config_from_metadata(st, &cfg) ||
      sparq_dit_diffusion_from_metadata(st, diff)) {
    sparq_safetensors_close(st);
    return cli_fail_last_error();
  }
  /* a training checkpoint carries the EMA weights as "ema.<name>": DiT samples with those */
  const bool has_ema = sparq_safetensors_find(st, "ema.x_embedder.proj.weight") != NULL;
  const char *guidance = sparq_safetensors_metadata(st, "guidance");
  found.gft = guidance && !strcmp(guidance, "gft");
  sparq_safetensors_close(st);
  sparq_dit *dit = NULL;
  if (sparq_dit_create(&cfg, 0, &dit)) {
    sparq_diffusion_free(diff);
    return cli_fail_last_error();
  }
  sparq_param_list *pl = sparq_dit_params(dit);
  sparq_status s;
  if (has_ema && !raw) {
    float *ema = sparq_alloc(pl->numel * sizeof *ema, "EMA weights");
    if (!ema) {
      s = SPARQ_ERR_NOMEM;
    } else {
      const sparq_ckpt_state state = {"ema.", ema, pl->numel};
      s = sparq_checkpoint_load_states(path, pl, &state, 1, NULL);
      if (!s) memcpy(pl->data, ema, pl->numel * sizeof *ema);
      found.used_ema = !s;
      sparq_free(ema);
    }
  } else {
    s = sparq_checkpoint_load(path, pl, NULL, NULL);
  }
  if (s) {
    sparq_dit_free(dit);
    sparq_diffusion_free(diff);
    return cli_fail_last_error();
  }
  *out = dit;
  if (info) *info = found;
  return CLI_OK;
}

/* "all" cycles the classes over the rows (balanced); a number fixes one. */
static int parse_class(const char *s, int64_t num_classes, int32_t *fixed) {
  if (!strcmp(s, "all")) {
    *fixed = -1;
    return CLI_OK;
  }
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v >= num_classes)
    return cli_usage_error("sample", "--class must be all or a class in 0..%" PRId64, num_classes - 1);
  *fixed = (int32_t)v;
  return CLI_OK;
}

typedef struct gif_frames {
  uint8_t *frames; /* nframes x grid image */
  int nframes, cap, tiles, side;
  sparq_image grid;
  int h, w;
  sparq_status status;
} gif_frames;

static void on_step_gif(void *user, int64_t step, int64_t steps, const float *x, const float *x0_hat, int64_t n) {
  (void)step, (void)steps, (void)x0_hat, (void)n;
  gif_frames *g = user;
  if (g->status || g->nframes >= g->cap) return;
  const size_t tile = (size_t)g->side * (size_t)g->side;
  uint8_t *tiles = malloc((size_t)g->tiles * tile);
  if (!tiles) {
    g->status = sparq_fail(SPARQ_ERR_NOMEM, "sample: out of memory for the GIF");
    return;
  }
  for (int i = 0; i < g->tiles; i++)
    sparq_image_u8_from_f32(tiles + i * tile, x + (size_t)i * tile, g->side, g->side, 1, -1.0f, 1.0f, false);
  sparq_image img = {0};
  g->status = sparq_image_grid(tiles, g->tiles, g->side, g->side, 1, NULL, NULL, &img);
  free(tiles);
  if (g->status) return;
  const size_t bytes = (size_t)img.height * (size_t)img.width;
  if (!g->frames) {
    g->h = img.height, g->w = img.width;
    g->frames = malloc((size_t)g->cap * bytes);
    if (!g->frames) g->status = sparq_fail(SPARQ_ERR_NOMEM, "sample: out of memory for the GIF");
  }
  if (!g->status) memcpy(g->frames + (size_t)g->nframes++ * bytes, img.pixels, bytes);
  sparq_image_free(&img);
}

int cli_dit_sample(sparq_dit *dit, const sparq_diffusion *diff, const cli_sample_flags *f, int32_t fixed_class,
                   int64_t n, float *x, int32_t *labels, const char *gif_path, sparq_sample_stats *stats) {
  const sparq_dit_config *c = sparq_dit_get_config(dit);
  sparq_sample_config sc = sparq_sample_config_default();
  sparq_attn_variant attn;
  if (!sparq_sampler_from_name(f->sampler, &sc.sampler))
    return cli_usage_error("sample", "--sampler must be ddim, euler, heun or dpmpp2m");
  if (!sparq_attn_variant_from_name(f->attn, &attn))
    return cli_usage_error("sample", "unknown --attn variant '%s'", f->attn);
  sc.steps = f->steps, sc.cfg_scale = (float)f->cfg, sc.eta = (float)f->eta, sc.seed = (uint64_t)f->seed + 1;
  if (f->beta > 0 && !f->gft) return cli_usage_error("sample", "--beta needs a GFT checkpoint (train dit --guidance gft)");
  /* GFT: guidance is the model's own temperature input, beta = 1 / w, one
   * network evaluation per step (spec gft.md section 5) */
  const double beta = f->beta > 0 ? f->beta : 1.0 / f->cfg;
  if (f->gft && !(beta > 0 && beta <= 1))
    return cli_usage_error("sample", "GFT samples with beta in (0, 1] (cfg w >= 1); got beta %g", beta);
  float *betas = NULL;
  if (f->gft) {
    if (!(betas = sparq_alloc((size_t)n * sizeof *betas, "GFT temperatures"))) return cli_fail_last_error();
    for (int64_t i = 0; i < n; i++) betas[i] = (float)beta;
    sc.cfg_scale = 1.0f, sc.extra = betas, sc.extra_uncond = 1.0f;
  }
  for (int64_t i = 0; i < n; i++) labels[i] = fixed_class >= 0 ? fixed_class : (int32_t)(i % c->num_classes);
  sparq_rng rng = sparq_rng_make((uint64_t)f->seed, 0x6e6f697365u /* "noise" */);
  const int64_t dim = c->in_channels * c->input_size * c->input_size;
  sparq_rng_fill_normal(&rng, x, (size_t)(n * dim), 0.0f, 1.0f);
  gif_frames g = {.cap = (int)f->steps + 1, .tiles = (int)(n < GIF_TILES ? n : GIF_TILES), .side = (int)c->input_size};
  if (gif_path && c->in_channels == 1) sc.on_step = on_step_gif, sc.user = &g;
  sparq_dit_sampler_net net = {.dit = dit, .attn = attn, .chunk = f->chunk};
  sparq_denoiser den;
  sparq_dit_denoiser(&net, &den);
  sparq_status s = sparq_diffusion_sample(diff, &den, &sc, labels, n, x, stats);
  if (!s) s = g.status;
  if (!s && gif_path && g.frames) s = sparq_gif_write(gif_path, g.frames, g.nframes, g.h, g.w, 1, 8, true);
  free(g.frames);
  sparq_free(betas);
  return s ? cli_fail_last_error() : CLI_OK;
}

static int write_grid(const char *path, const float *x, const int32_t *labels, int64_t n, int side, bool labelled) {
  const size_t tile = (size_t)side * (size_t)side;
  uint8_t *tiles = malloc((size_t)n * tile);
  const char **names = calloc((size_t)n, sizeof *names);
  if (!tiles || !names) {
    free(tiles), free(names);
    return cli_fail("sample: out of memory for the grid");
  }
  for (int64_t i = 0; i < n; i++) {
    sparq_image_u8_from_f32(tiles + i * tile, x + i * tile, side, side, 1, -1.0f, 1.0f, false);
    names[i] = labelled ? sparq_fashion_mnist_class_name(labels[i]) : NULL;
  }
  sparq_grid_options opt = sparq_grid_options_default();
  opt.cols = n >= 10 ? 10 : (int)n;
  opt.scale = 2;
  sparq_image img = {0};
  sparq_status s = sparq_image_grid(tiles, (int)n, side, side, 1, labelled ? names : NULL, &opt, &img);
  if (!s) s = sparq_png_write(path, img.pixels, img.height, img.width, 1);
  sparq_image_free(&img);
  free(tiles), free(names);
  return s ? cli_fail_last_error() : CLI_OK;
}

int cli_sample(int argc, char **argv) {
  cli_sample_flags f = cli_sample_flags_default();
  const char *grid = NULL, *npy = NULL, *gif = NULL;
  cli_opt opts[CLI_SAMPLE_OPTS + 7];
  int n = cli_sample_opts(&f, opts);
  opts[n++] = (cli_opt){"beta", CLI_DOUBLE, &f.beta, 1e-6, 1, NULL};
  opts[n++] = (cli_opt){"cfg", CLI_DOUBLE, &f.cfg, 0, 100, NULL};
  opts[n++] = (cli_opt){"class", CLI_STRING, &f.cls, 0, 0, NULL};
  opts[n++] = (cli_opt){"n", CLI_INT, &f.n, 1, 100000, NULL};
  opts[n++] = (cli_opt){"grid", CLI_STRING, &grid, 0, 0, NULL};
  opts[n++] = (cli_opt){"npy", CLI_STRING, &npy, 0, 0, NULL};
  opts[n++] = (cli_opt){"gif", CLI_STRING, &gif, 0, 0, NULL};
  int rc = cli_parse("sample", argc, argv, 1, opts, n, NULL, 0, NULL);
  if (rc) return rc;
  if (!f.ckpt) return cli_usage_error("sample", "--ckpt CKPT is required");
  if (!grid && !npy && !gif) return cli_usage_error("sample", "give at least one of --grid, --npy, --gif");
  sparq_dit *dit = NULL;
  sparq_diffusion diff = {0};
  cli_dit_info info;
  if ((rc = cli_load_dit(f.ckpt, f.raw, &dit, &diff, &info))) return rc;
  f.gft = info.gft;
  const sparq_dit_config *c = sparq_dit_get_config(dit);
  int32_t fixed = -1;
  const int64_t dim = c->in_channels * c->input_size * c->input_size;
  float *x = NULL;
  int32_t *labels = NULL;
  if (!(rc = parse_class(f.cls, c->num_classes, &fixed))) {
    x = sparq_alloc((size_t)(f.n * dim) * sizeof *x, "samples");
    labels = sparq_alloc((size_t)f.n * sizeof *labels, "labels");
    if (!x || !labels) rc = cli_fail_last_error();
  }
  sparq_sample_stats stats = {0};
  if (!rc) rc = cli_dit_sample(dit, &diff, &f, fixed, f.n, x, labels, gif, &stats);
  if (!rc) {
    char guide[64];
    if (f.gft) snprintf(guide, sizeof guide, "GFT beta %.3g", f.beta > 0 ? f.beta : 1.0 / f.cfg);
    else snprintf(guide, sizeof guide, "cfg %.3g", f.cfg);
    printf("sample: %" PRId64 " images, %s %" PRId64 " steps, %s, attention %s: NFE %" PRId64
           " per image (%" PRId64 " network calls), %.2f s (%.4f s per image)\n",
           f.n, f.sampler, f.steps, guide, f.attn, stats.nfe, stats.calls, stats.seconds,
           stats.seconds / (double)f.n);
    if (grid && c->in_channels == 1)
      rc = write_grid(grid, x, labels, f.n, (int)c->input_size, c->num_classes == SPARQ_FASHION_MNIST_CLASSES);
    if (!rc && npy) {
      sparq_tensor t = {.data = x, .dtype = SPARQ_F32, .ndim = 4,
                        .shape = {f.n, c->in_channels, c->input_size, c->input_size}};
      if (sparq_npy_write(npy, &t)) rc = cli_fail_last_error();
    }
    if (!rc && grid) printf("grid: %s\n", grid);
    if (!rc && npy) printf("npy: %s\n", npy);
    if (!rc && gif) printf("gif: %s\n", gif);
  }
  sparq_free(x), sparq_free(labels);
  sparq_dit_free(dit);
  sparq_diffusion_free(&diff);
  return rc;
}
