#include <string.h>
#include <unistd.h>

#include "sparq/base.h"

static void format_duration(char *buf, size_t size, double seconds) {
  if (!(seconds >= 0) || seconds > 359999) {
    snprintf(buf, size, "--:--");
    return;
  }
  long s = (long)(seconds + 0.5);
  if (s >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

void sparq_progress_begin(sparq_progress *p, FILE *out, const char *label, const char *unit, int64_t total) {
  memset(p, 0, sizeof *p);
  p->out = out ? out : stderr;
  snprintf(p->label, sizeof p->label, "%s", label ? label : "");
  snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
  p->total = total;
  p->start = p->last_print = sparq_now();
  p->tty = isatty(fileno(p->out));
  p->interval = p->tty ? 0.1 : 10.0;
}

static void print_line(sparq_progress *p, const char *extra, bool final) {
  double now = sparq_now(), elapsed = now - p->start;
  double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
  char eta[32], line[256];
  int n;
  if (final) {
    format_duration(eta, sizeof eta, elapsed);
    n = snprintf(line, sizeof line, "%s %lld/%lld %.3g %s/s in %s", p->label, (long long)p->done,
                 (long long)p->total, rate, p->unit, eta);
  } else {
    format_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - p->done) / rate : -1);
    double pct = p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0;
    n = snprintf(line, sizeof line, "%s %lld/%lld %3.0f%% %.3g %s/s ETA %s", p->label,
                 (long long)p->done, (long long)p->total, pct, rate, p->unit, eta);
  }
  if (extra && *extra && n >= 0 && (size_t)n < sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, " %s", extra);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
  if (p->tty) {
    /* pad with blanks so a shorter line fully covers the previous one */
    int pad = p->last_len > n ? p->last_len - n : 0;
    fprintf(p->out, "\r%s%*s%s", line, pad, "", final ? "\n" : "");
  } else {
    fprintf(p->out, "%s\n", line);
  }
  fflush(p->out);
  p->last_len = n;
  p->last_print = now;
}

void sparq_progress_update(sparq_progress *p, int64_t done, const char *extra) {
  p->done = done;
  if (sparq_now() - p->last_print >= p->interval) print_line(p, extra, false);
}

void sparq_progress_end(sparq_progress *p, const char *extra) { print_line(p, extra, true); }
