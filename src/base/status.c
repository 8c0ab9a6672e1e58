#include "sparq/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

const char *sparq_status_name(sparq_status status) {
  switch (status) {
    case SPARQ_OK: return "ok";
    case SPARQ_ERR_ARG: return "invalid argument";
    case SPARQ_ERR_IO: return "i/o error";
    case SPARQ_ERR_FORMAT: return "format error";
    case SPARQ_ERR_NOMEM: return "out of memory";
    case SPARQ_ERR_UNSUPPORTED: return "unsupported";
    case SPARQ_ERR_NOT_FOUND: return "not found";
    case SPARQ_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char *sparq_last_error(void) { return last_error; }

void sparq_clear_error(void) { last_error[0] = '\0'; }

sparq_status sparq_fail(sparq_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return status;
}
