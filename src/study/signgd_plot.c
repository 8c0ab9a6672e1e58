/* The gnuplot script for the four stage figures. The CLI runs it; the
 * library only writes it, so plotting stays optional. */
#include <stdio.h>
#include <string.h>

#include "study/signgd_internal.h"

/* A gnuplot single-quoted string of a, then b when not NULL: ' doubles. */
static void quoted2(sg_text *t, const char *a, const char *b) {
  sg_text_printf(t, "'");
  for (const char *part[2] = {a, b}, **p = part; p < part + 2; p++)
    for (const char *s = *p; s && *s; s++) sg_text_printf(t, *s == '\'' ? "''" : "%c", *s);
  sg_text_printf(t, "'");
}

static void quoted(sg_text *t, const char *s) { quoted2(t, s, NULL); }

static const char *const colors[3] = {"#1f77b4", "#d62728", "#2ca02c"}; /* signgd, adam, gd */
static const char *const quantity_colors[6] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

typedef struct plot_set {
  const sparq_signgd_trace *traces;
  const char *const *dat;
  size_t count;
  uint64_t seed;       /* the drawn seed */
  double snrs[64];     /* panels */
  size_t panels;
  int primary;         /* optimizer whose internals signal_noise.png shows */
} plot_set;

static bool drawn(const plot_set *ps, size_t i, double snr) {
  return ps->traces[i].config.seed == ps->seed && ps->traces[i].config.snr == snr;
}

static void begin_figure(sg_text *t, const plot_set *ps, const char *png_dir, const char *name, const char *title) {
  size_t cols = ps->panels == 1 ? 1 : ps->panels <= 4 ? 2 : 3, rows = (ps->panels + cols - 1) / cols;
  sg_text_printf(t, "\nset terminal pngcairo size %zu,%zu font ',10'\nset output ", 700 * cols, 500 * rows);
  quoted2(t, png_dir, name);
  sg_text_printf(t, "\n");
  char full[512];
  snprintf(full, sizeof full, "%s (seed %llu)", title, (unsigned long long)ps->seed);
  sg_text_printf(t, "set key opaque box font ',8'\nset multiplot layout %zu,%zu title ", rows, cols);
  quoted(t, full);
  sg_text_printf(t, "\n");
}

/* How a line's x and y come from the .dat columns. */
typedef enum x_axis { X_STEP, X_STEP1, X_STEP1_FLOOR } x_axis;

typedef struct line {
  const char *field; /* a sparq_signgd_point field */
  const char *title;
  int dash;
} line;

/* The gnuplot `using` spec: step (or step + 1 for log x) against the field,
 * optionally floored at 1e-12 for log y. */
static void using_spec(sg_text *t, x_axis x, const char *field) {
  const int c = sg_dat_column(field);
  if (x == X_STEP) sg_text_printf(t, " using 1:%d", c);
  else if (x == X_STEP1) sg_text_printf(t, " using ($1+1):%d", c);
  else sg_text_printf(t, " using ($1+1):($%d < 1e-12 ? 1e-12 : $%d)", c, c);
}

/* One `plot` command: every line for every drawn run of this SNR, coloured
 * by optimizer. */
static void panel(sg_text *t, const plot_set *ps, double snr, x_axis x, const line *lines, size_t nlines) {
  sg_text_printf(t, "set title 'SNR %g'\nplot", snr);
  int first = 1;
  for (size_t i = 0; i < ps->count; i++) {
    if (!drawn(ps, i, snr)) continue;
    const int o = (int)ps->traces[i].config.optim;
    for (size_t l = 0; l < nlines; l++) {
      sg_text_printf(t, "%s \\\n  ", first ? "" : ",");
      first = 0;
      quoted(t, ps->dat[i]);
      using_spec(t, x, lines[l].field);
      sg_text_printf(t, " with lines lw 2 lc rgb '%s' dt %d title '%s %s'", colors[o], lines[l].dash,
                     sparq_signgd_optim_name((sparq_signgd_optim)o), lines[l].title);
    }
  }
  sg_text_printf(t, "\n");
}

static void losses(sg_text *t, const plot_set *ps, const char *png_dir) {
  begin_figure(t, ps, png_dir, "/losses.png", "Training (solid) and test (dashed) logistic loss");
  sg_text_printf(t, "set logscale y\nset format y '10^{%%L}'\nset xlabel 'step'\nset ylabel 'loss'\n"
                    "set key bottom left\n");
  const line lines[] = {{"train_loss", "train", 1}, {"test_loss", "test", 2}};
  for (size_t p = 0; p < ps->panels; p++) panel(t, ps, ps->snrs[p], X_STEP, lines, 2);
  sg_text_printf(t, "unset multiplot\nunset logscale\nset format y '%%g'\n");
}

static void signal_noise(sg_text *t, const plot_set *ps, const char *png_dir) {
  char title[256];
  snprintf(title, sizeof title,
           "Signal vs noise: %s internals (solid); other optimizers' value signal (dashed) and noise (dotted)",
           sparq_signgd_optim_name((sparq_signgd_optim)ps->primary));
  begin_figure(t, ps, png_dir, "/signal_noise.png", title);
  sg_text_printf(t, "set logscale y\nset format y '10^{%%L}'\nset xlabel 'step'\nset ylabel 'magnitude'\n"
                    "set key bottom right\n");
  static const line quantities[6] = {{"value_signal", "value signal <v,mu>", 1},
                                     {"value_noise", "value noise mean <v,y xi>", 1},
                                     {"q_signal", "|q signal|", 1},
                                     {"k_signal", "|k signal|", 1},
                                     {"q_noise", "|q noise|", 1},
                                     {"k_noise", "|k noise|", 1}};
  for (size_t p = 0; p < ps->panels; p++) {
    sg_text_printf(t, "set title 'SNR %g'\nplot", ps->snrs[p]);
    int first = 1;
    for (size_t i = 0; i < ps->count; i++) {
      if (!drawn(ps, i, ps->snrs[p])) continue;
      const int o = (int)ps->traces[i].config.optim, mine = o == ps->primary;
      for (int q = 0; q < (mine ? 6 : 2); q++) {
        sg_text_printf(t, "%s \\\n  ", first ? "" : ",");
        first = 0;
        quoted(t, ps->dat[i]);
        using_spec(t, X_STEP, quantities[q].field);
        sg_text_printf(t, " with lines lw 2 lc rgb '%s' dt %d title '%s %s'", mine ? quantity_colors[q] : colors[o],
                       mine ? 1 : 2 + q, sparq_signgd_optim_name((sparq_signgd_optim)o), quantities[q].title);
      }
    }
    sg_text_printf(t, "\n");
  }
  sg_text_printf(t, "unset multiplot\nunset logscale\nset format y '%%g'\nset key default\n");
}

static void alignment(sg_text *t, const plot_set *ps, const char *png_dir) {
  begin_figure(t, ps, png_dir, "/alignment.png",
               "Query/key noise: sign alignment (solid), fraction positive query (dashed) and key (dotted)");
  sg_text_printf(t, "set logscale x\nset xlabel 'step + 1'\nset ylabel 'fraction of (neuron, sample)'\n"
                    "set yrange [0:1.05]\nset key bottom left\n");
  const line lines[] = {{"alignment", "alignment", 1}, {"q_noise_pos", "q noise > 0", 2},
                        {"k_noise_pos", "k noise > 0", 3}};
  for (size_t p = 0; p < ps->panels; p++) panel(t, ps, ps->snrs[p], X_STEP1, lines, 3);
  sg_text_printf(t, "unset multiplot\nunset logscale\nset autoscale y\nset key default\n");
}

static void softmax(sg_text *t, const plot_set *ps, const char *png_dir) {
  begin_figure(t, ps, png_dir, "/softmax.png",
               "Softmax: s11 signal->signal (solid), s21 noise->signal (dashed); floored at 1e-12");
  sg_text_printf(t, "set logscale xy\nset format y '10^{%%L}'\nset xlabel 'step + 1'\nset ylabel 'softmax score'\n"
                    "set yrange [1e-12:2]\n"
                    "set key bottom left\n");
  const line lines[] = {{"s11", "s11", 1}, {"s21", "s21", 2}};
  for (size_t p = 0; p < ps->panels; p++) panel(t, ps, ps->snrs[p], X_STEP1_FLOOR, lines, 2);
  sg_text_printf(t, "unset multiplot\nunset logscale\n");
}

sparq_status sparq_signgd_write_plot_script(const char *script_path, const char *png_dir,
                                            const sparq_signgd_trace *traces, const char *const *dat_paths,
                                            size_t count) {
  if (!script_path || !png_dir || !traces || !dat_paths || count == 0)
    return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_write_plot_script: missing path, traces or dat paths");
  plot_set ps = {traces, dat_paths, count, traces[0].config.seed, {0}, 0, -1};
  for (size_t i = 0; i < count; i++)
    if (traces[i].config.seed < ps.seed) ps.seed = traces[i].config.seed;
  for (size_t i = 0; i < count; i++) {
    if (traces[i].config.seed != ps.seed) continue;
    if (!dat_paths[i]) return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_write_plot_script: dat path %zu is NULL", i);
    /* SignGD's internals when it is among the runs, else the first run's */
    if (ps.primary < 0 || traces[i].config.optim == SPARQ_SIGNGD_OPT_SIGN) ps.primary = (int)traces[i].config.optim;
    size_t p = 0;
    while (p < ps.panels && ps.snrs[p] != traces[i].config.snr) p++;
    if (p == ps.panels) {
      if (ps.panels == sizeof ps.snrs / sizeof ps.snrs[0])
        return sparq_fail(SPARQ_ERR_ARG, "sparq_signgd_write_plot_script: more than 64 SNR values");
      ps.snrs[ps.panels++] = traces[i].config.snr;
    }
  }
  /* panels in ascending SNR */
  for (size_t a = 1; a < ps.panels; a++)
    for (size_t b = a; b > 0 && ps.snrs[b - 1] > ps.snrs[b]; b--) {
      double tmp = ps.snrs[b];
      ps.snrs[b] = ps.snrs[b - 1];
      ps.snrs[b - 1] = tmp;
    }
  sg_text t = {0};
  sg_text_printf(&t, "# The SignGD study's four stage figures; written by sparq signgd, run with gnuplot.\n"
                     "# Columns of the .dat files: see their '#' header.\n");
  losses(&t, &ps, png_dir);
  signal_noise(&t, &ps, png_dir);
  alignment(&t, &ps, png_dir);
  softmax(&t, &ps, png_dir);
  return sg_text_commit(&t, script_path);
}
