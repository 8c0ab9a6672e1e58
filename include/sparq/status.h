/* Status codes and error messages.
 *
 * Every sparq function that can fail returns a sparq_status. On failure it
 * also leaves a one-line message in a thread-local buffer, readable with
 * sparq_last_error(), that names what went wrong and where: a file path for
 * I/O and parsing errors ("data.npy: header length 4096 runs past the end of
 * the file (120 bytes)"), the function name for bad arguments
 * ("sparq_sgemm: lda 3 is smaller than the 4 columns of A"). The library never
 * aborts or exits on bad input. */
#ifndef SPARQ_STATUS_H
#define SPARQ_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparq_status {
  SPARQ_OK = 0,
  SPARQ_ERR_ARG,         /* a caller passed an invalid argument */
  SPARQ_ERR_IO,          /* open/read/write/fsync/rename failed */
  SPARQ_ERR_FORMAT,      /* a file or string is malformed */
  SPARQ_ERR_NOMEM,       /* an allocation failed or would exceed a limit */
  SPARQ_ERR_UNSUPPORTED, /* valid input that sparq does not handle */
  SPARQ_ERR_NOT_FOUND,   /* a named item (tensor, file, data set) is missing */
  SPARQ_ERR_INTERNAL     /* a library bug; please report */
} sparq_status;

/* Short stable name of a status ("format error"). Never NULL. */
const char *sparq_status_name(sparq_status status);

/* Message of the last failure on the calling thread; "" if none yet.
 * The pointer stays valid until the next sparq call on this thread. */
const char *sparq_last_error(void);

/* Records a printf-style message for the calling thread and returns `status`,
 * so a failing path reads `return sparq_fail(SPARQ_ERR_ARG, "...", ...);`.
 * Messages longer than 1023 bytes are truncated. */
sparq_status sparq_fail(sparq_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the calling thread's message. */
void sparq_clear_error(void);

#ifdef __cplusplus
}
#endif
#endif
