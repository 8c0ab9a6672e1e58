/* V:N:M patterns: parsing, mask diversity and the two-phase choice of V and
 * M from measured speedups (spec §3). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/vnm_internal.h"

sparq_status sparq_vnm_pattern_check(sparq_vnm_pattern p, const char *who) {
  if (p.n != 2) return sparq_fail(SPARQ_ERR_ARG, "%s: N must be 2 (2:4 inside the kept columns), got %d", who, p.n);
  if (p.m < 4 || p.m > SPARQ_VNM_MAX_M)
    return sparq_fail(SPARQ_ERR_ARG, "%s: M must be in 4..%d, got %d", who, SPARQ_VNM_MAX_M, p.m);
  if (p.v < 1 || p.v > SPARQ_VNM_MAX_V)
    return sparq_fail(SPARQ_ERR_ARG, "%s: V must be in 1..%d, got %d", who, SPARQ_VNM_MAX_V, p.v);
  return SPARQ_OK;
}

/* One decimal field of a pattern; *end is left after it. */
static bool parse_field(const char *s, const char **end, long *out) {
  if (*s < '0' || *s > '9') return false;
  char *e;
  errno = 0;
  long v = strtol(s, &e, 10);
  if (errno || v > 1000000) return false;
  *end = e;
  *out = v;
  return true;
}

sparq_status sparq_vnm_pattern_parse(const char *text, sparq_vnm_pattern *out) {
  if (!text || !out) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_pattern_parse: NULL argument");
  long f[3];
  int count = 0;
  const char *s = text;
  for (;;) {
    if (count == 3 || !parse_field(s, &s, &f[count]))
      return sparq_fail(SPARQ_ERR_ARG, "pattern '%s': expected V:N:M or N:M (e.g. 64:2:8 or 2:4)", text);
    count++;
    if (*s == '\0') break;
    if (*s != ':') return sparq_fail(SPARQ_ERR_ARG, "pattern '%s': expected V:N:M or N:M (e.g. 64:2:8 or 2:4)", text);
    s++;
  }
  if (count < 2) return sparq_fail(SPARQ_ERR_ARG, "pattern '%s': expected V:N:M or N:M (e.g. 64:2:8 or 2:4)", text);
  sparq_vnm_pattern p = count == 3 ? (sparq_vnm_pattern){(int)f[0], (int)f[1], (int)f[2]}
                                   : (sparq_vnm_pattern){1, (int)f[0], (int)f[1]};
  char who[96];
  snprintf(who, sizeof who, "pattern '%s'", text);
  sparq_status st = sparq_vnm_pattern_check(p, who);
  if (st == SPARQ_OK) *out = p;
  return st;
}

int sparq_vnm_pattern_format(sparq_vnm_pattern p, char *buf, size_t size) {
  if (p.v == 1) return snprintf(buf, size, "%d:%d", p.n, p.m);
  return snprintf(buf, size, "%d:%d:%d", p.v, p.n, p.m);
}

int64_t sparq_vnm_round_up(int64_t n, int64_t unit) { return (n + unit - 1) / unit * unit; }

double sparq_vnm_log_diversity(sparq_vnm_pattern p) {
  if (p.v < 1 || p.m < 4) return 0.0;
  double m = p.m, subsets = m * (m - 1) * (m - 2) * (m - 3) / 24.0;
  return (log(subsets) + p.v * log(6.0)) / ((double)p.v * m);
}

sparq_status sparq_vnm_choose(const sparq_vnm_candidate *candidates, size_t count, double target, size_t *best) {
  if (!candidates || !best || count == 0) return sparq_fail(SPARQ_ERR_ARG, "sparq_vnm_choose: no candidates");
  size_t pick = count;
  double pick_k = 0, fastest = -1;
  for (size_t i = 0; i < count; i++) {
    double s = candidates[i].speedup;
    if (s > fastest) fastest = s;
    if (!(s >= target)) continue; /* NaN speedups never qualify */
    double k = sparq_vnm_log_diversity(candidates[i].pattern);
    if (pick == count || k > pick_k || (k == pick_k && s > candidates[pick].speedup)) pick = i, pick_k = k;
  }
  if (pick == count)
    return sparq_fail(SPARQ_ERR_NOT_FOUND, "sparq_vnm_choose: no pattern reaches speedup %.2fx (best %.2fx)", target,
                      fastest);
  *best = pick;
  return SPARQ_OK;
}
