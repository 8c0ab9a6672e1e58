#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "sparq/status.h"

int cli_usage_error(const char *command, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "sparq %s: ", command);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  cli_usage(command, false);
  return CLI_USAGE;
}

static bool choice_ok(const char *choices, const char *value) {
  size_t len = strlen(value);
  for (const char *p = choices; *p;) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && !strncmp(p, value, n)) return true;
    if (!bar) break;
    p = bar + 1;
  }
  return false;
}

static int set_value(const char *command, const cli_opt *o, const char *value) {
  char *end;
  errno = 0;
  switch (o->kind) {
    case CLI_INT: {
      long long v = strtoll(value, &end, 10);
      if (errno || end == value || *end)
        return cli_usage_error(command, "--%s expects an integer, got '%s'", o->name, value);
      if ((double)v < o->min || (double)v > o->max)
        return cli_usage_error(command, "--%s %lld is out of range [%.0f, %.0f]", o->name, v, o->min, o->max);
      *(int64_t *)o->dst = v;
      return CLI_OK;
    }
    case CLI_DOUBLE: {
      double v = strtod(value, &end);
      if (errno || end == value || *end || !isfinite(v))
        return cli_usage_error(command, "--%s expects a number, got '%s'", o->name, value);
      if (v < o->min || v > o->max)
        return cli_usage_error(command, "--%s %g is out of range [%g, %g]", o->name, v, o->min, o->max);
      *(double *)o->dst = v;
      return CLI_OK;
    }
    case CLI_CHOICE:
      if (!choice_ok(o->choices, value))
        return cli_usage_error(command, "--%s must be one of %s, got '%s'", o->name, o->choices, value);
      *(const char **)o->dst = value;
      return CLI_OK;
    case CLI_STRING:
      if (!*value) return cli_usage_error(command, "--%s expects a non-empty value", o->name);
      *(const char **)o->dst = value;
      return CLI_OK;
    case CLI_BOOL:
      break;
  }
  return cli_usage_error(command, "--%s takes no value", o->name);
}

int cli_parse(const char *command, int argc, char **argv, int first, const cli_opt *opts, int nopts,
              const char **positional, int max_positional, int *npositional) {
  int npos = 0;
  bool options_done = false;
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (options_done || arg[0] != '-' || !strcmp(arg, "-")) {
      if (npos >= max_positional) return cli_usage_error(command, "unexpected argument '%s'", arg);
      positional[npos++] = arg;
      continue;
    }
    if (!strcmp(arg, "--")) {
      options_done = true;
      continue;
    }
    if (strncmp(arg, "--", 2)) return cli_usage_error(command, "unknown option '%s'", arg);
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_opt *o = NULL;
    for (int j = 0; j < nopts; j++)
      if (strlen(opts[j].name) == name_len && !strncmp(opts[j].name, name, name_len)) o = &opts[j];
    if (!o) return cli_usage_error(command, "unknown option '--%.*s'", (int)name_len, name);
    if (o->kind == CLI_BOOL) {
      if (eq) return cli_usage_error(command, "--%s takes no value", o->name);
      *(bool *)o->dst = true;
      continue;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
      if (i + 1 >= argc) return cli_usage_error(command, "--%s needs a value", o->name);
      value = argv[++i];
    }
    int rc = set_value(command, o, value);
    if (rc != CLI_OK) return rc;
  }
  if (npositional) *npositional = npos;
  return CLI_OK;
}

int cli_fail_last_error(void) {
  fprintf(stderr, "sparq: %s\n", sparq_last_error());
  return CLI_FAIL;
}

int cli_fail(const char *fmt, ...) {
  va_list ap;
  fputs("sparq: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return CLI_FAIL;
}

int cli_mkdirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return cli_fail("%s: path too long", path);
  for (char *p = buf + 1;; p++) {
    char c = *p;
    if (c == '/' || c == '\0') {
      *p = '\0';
      if (mkdir(buf, 0777) && errno != EEXIST) return cli_fail("%s: cannot create directory: %s", buf, strerror(errno));
      *p = c;
      if (!c) break;
    }
  }
  return CLI_OK;
}

int cli_pick_runs(const char *command, const char *list, const char *const *names, int count, bool *want) {
  for (const char *p = list; *p;) {
    const size_t len = strcspn(p, ",");
    int hit = -1;
    for (int i = 0; i < count; i++)
      if (strlen(names[i]) == len && !strncmp(p, names[i], len)) hit = i;
    if (hit < 0) {
      char all[256] = "";
      for (int i = 0; i < count; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", names[i]);
      return cli_usage_error(command, "--runs takes a comma list of %s", all);
    }
    want[hit] = true;
    p += len + (p[len] == ',');
  }
  return CLI_OK;
}
